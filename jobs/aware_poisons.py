"""Defense-aware poisons: Narcissus crafted through the purifier vs the plain trigger, both after purification.

PureGen's Table 11 (App. E.2.1): the trigger optimisation sees the EBM (50 Langevin steps), three
target classes, the same budget. Here every attack of the config is run for each of
`target_classes`: the defense-aware ones (`narcissus_ebm_aware`, `narcissus_ddpm_aware`) are first
crafted through the sweep's own EBM / DDPM (trained once by the sweep's provisioning; cached)
into the poison cache, then one defense sweep per class trains a classifier per (attack, purifier
setting) and measures poison success after purification. summary.json compares the triggers:
mean and max poison success over the classes per (attack, purifier), and mean natural accuracy.

    python jobs/aware_poisons.py                                      # conf/adaptive_poisons.yaml (digits)
    python jobs/aware_poisons.py --config conf/attacks/narcissus_ebm_aware.yaml   # plain vs EBM-aware only
    python jobs/aware_poisons.py --config conf/adaptive_poisons_cifar10.yaml      # CIFAR-10, ResNet-18 (GPU)
Afterwards a defense sweep can list the aware attack with the `purifier_checkpoint` this job
printed; it finds the crafted set in <work_dir>/poisons.
Exit codes: 0 all trials finished, 1 a trial failed, 2 bad config.
"""

from pathlib import Path

from pydantic import Field

from genlab.attacks.backdoor.narcissus import NarcissusAwareConfig
from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.data import load_dataset
from genlab.fileio import write_json_atomic
from genlab.runtime import init_ray
from genlab.sweep.adaptive import compare_triggers, craft_aware
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import run_sweep
from genlab.sweep.training_sets import provision_models


class AwarePoisonsConfig(SweepConfig):
    """A defense sweep run once per target class; its defense-aware attacks are crafted through its purifiers first."""

    target_classes: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)  # Table 11: classes 0, 1, 2


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/adaptive_poisons.yaml")
    cfg = load_config(AwarePoisonsConfig, args.config, args.overrides)
    out_dir = (args.out or Path("out/aware_poisons")).resolve()
    sweep = SweepConfig.model_validate({**cfg.model_dump(exclude={"target_classes"}),
                                        "work_dir": str(Path(cfg.work_dir).resolve())})
    train, test = load_dataset(sweep.dataset)
    init_ray(sweep.ray)
    provisioned = provision_models(sweep, train)
    rows, all_finished = [], True
    for target in cfg.target_classes:
        attacks = []
        for attack in sweep.attacks:
            attack = attack.model_copy(update={"target_class": target})
            if isinstance(attack, NarcissusAwareConfig):
                attack, _ = craft_aware(attack, provisioned, train, test, sweep.seed, Path(sweep.work_dir) / "poisons")
                print(f"[genlab] {attack.name} class {target}: crafted through {attack.purifier_checkpoint}")
            attacks.append(attack)
        result = run_sweep(sweep.model_copy(update={"attacks": attacks}), out_dir / f"class{target}")
        rows += [{**row, "target_class": target} for row in result.rows]
        all_finished &= result.all_finished
    comparison = compare_triggers(rows)
    write_json_atomic(out_dir / "summary.json", {"target_classes": cfg.target_classes, "comparison": comparison,
                                                 "trials": rows, "all_finished": all_finished})
    print("\nattack | purifier | poison success mean / max over classes | natural accuracy")
    for entry in comparison:
        print(f"{entry['attack']} | {entry['purifier']} {entry['purifier_params']} | "
              f"{entry['poison_success_mean']:.3f} / {entry['poison_success_max']:.3f} | "
              f"{entry['natural_accuracy_mean']:.3f}")
    print(f"[genlab] summary: {out_dir / 'summary.json'}")
    return 0 if all_finished else 1


if __name__ == "__main__":
    run_job(main)
