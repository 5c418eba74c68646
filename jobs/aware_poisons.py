"""Defense-aware poisons: Narcissus crafted through the purifier vs the plain trigger, both after purification.

PureGen's Table 11 (App. E.2.1): the trigger optimisation sees the EBM (50 Langevin steps), three
target classes, the same budget. Here one defense sweep runs per class of `target_classes`, with
every attack of the config aimed at it: the sweep crafts the defense-aware ones
(`narcissus_ebm_aware`, `narcissus_ddpm_aware`) through its own EBM / DDPM (trained once by its
provisioning; cached), trains a classifier per (attack, purifier setting) and measures poison
success after purification. summary.json compares the triggers: mean and max poison success over
the classes per (attack, purifier), and mean natural accuracy.

    python jobs/aware_poisons.py                                      # conf/adaptive_poisons.yaml (digits)
    python jobs/aware_poisons.py --config conf/attacks/narcissus_ebm_aware.yaml   # plain vs EBM-aware only
    python jobs/aware_poisons.py --config conf/adaptive_poisons_cifar10.yaml      # CIFAR-10, ResNet-18 (GPU)
The crafted sets stay in <work_dir>/poisons, keyed by the purifier model they saw: a defense sweep
listing the same aware attack (same work_dir, seed and purifier) reuses them.
Exit codes: 0 all trials finished, 1 a trial failed, 2 bad config.
"""

from pathlib import Path

from pydantic import Field

from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.fileio import write_json_atomic
from genlab.sweep.adaptive import compare_triggers
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import run_sweep


class AwarePoisonsConfig(SweepConfig):
    """A defense sweep run once per target class, the defense-aware attacks among its attacks."""

    target_classes: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # Table 11: classes 0, 1, 2


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/adaptive_poisons.yaml")
    cfg = load_config(AwarePoisonsConfig, args.config, args.overrides)
    out_dir = (args.out or Path("out/aware_poisons")).resolve()
    sweep = SweepConfig.model_validate(cfg.model_dump(exclude={"target_classes"}))
    rows, all_finished = [], True
    for target in cfg.target_classes:
        attacks = [attack.model_copy(update={"target_class": target}) for attack in sweep.attacks]
        result = run_sweep(sweep.model_copy(update={"attacks": attacks}), out_dir / f"class{target}")
        rows += [{**row, "target_class": target} for row in result.rows]
        all_finished &= result.all_finished
    comparison = compare_triggers(rows)
    write_json_atomic(out_dir / "summary.json", {"target_classes": cfg.target_classes, "comparison": comparison,
                                                 "trials": rows, "all_finished": all_finished})
    print("\nattack | purifier | poison success x1 mean / max over classes | x3 mean / max | natural accuracy")
    for entry in comparison:
        amplified = (f"{entry['poison_success_amplified_mean']:.3f} / {entry['poison_success_amplified_max']:.3f}"
                     if "poison_success_amplified_mean" in entry else "-")
        print(f"{entry['attack']} | {entry['purifier']} {entry['purifier_params']} | "
              f"{entry['poison_success_mean']:.3f} / {entry['poison_success_max']:.3f} | {amplified} | "
              f"{entry['natural_accuracy_mean']:.3f}")
    print(f"[genlab] summary: {out_dir / 'summary.json'}")
    return 0 if all_finished else 1


if __name__ == "__main__":
    run_job(main)
