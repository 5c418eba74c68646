"""Purification cost of a defense sweep done genlab's way against the naive way, measured in one run.

The sweep: one EBM purifier setting with 4 Langevin step counts (`--steps`) x 3 attacks
(badnets, blend, narcissus) at 1% poison (`--poison-fraction`) x `--seeds` classifier seeds.

- naive: what a shell loop over trials does. Every trial (attack, T, seed) purifies its whole
  poisoned training set with a fresh chain of T steps.
- genlab: what `jobs/defense_sweep.py` does (`genlab.purify.stage.purify_parts_cached`). One
  chain per image yields every T, the clean training rows are purified once and shared by every
  attack, only each attack's poisoned rows are purified on their own, and every part is cached,
  so the seeds and a second sweep reuse it.

Both ways run the same `EbmPurifier` in this process with the same threads: the sweep's Ray Data
stage distributes exactly these calls, so it is replaced by an in-process runner here (the `run`
argument of `purify_parts_cached`) to keep the timing free of actor start-up and to let the
sampler's own counter (`LangevinSampler.gradient_evaluations`) count every image-gradient
evaluation. The EBM has random weights (cost does not depend on training). As a check that the
two ways compute the same thing, every (attack, T) training set of genlab's way is compared with
the naive one, pixel by pixel.

    python bench/sweep_cost.py                                  # 128 images, T = 5, 10, 20, 40, 3 seeds
    python bench/sweep_cost.py --images 1000 --steps 150 300 600 1000 --seeds 1

The last line is one JSON object with `gradient_evaluation_reduction` and `wall_time_reduction`
(naive / genlab, for the configured seeds), the same for one seed, the raw counts and seconds,
and `second_sweep_gradient_evaluations` (genlab's cost of running the sweep again: cache hits).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genlab.attacks import BadNetsConfig, BlendConfig, NarcissusConfig, craft_poisons
from genlab.checkpoints import save_model
from genlab.data import DatasetConfig, load_dataset
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.base import PurifierSettings
from genlab.purify.cache import PurificationCache, PurifiedImages
from genlab.purify.ebm import EBM_KIND, EbmPurifier, EbmSettings
from genlab.purify.stage import PurificationStageConfig, StageInput, StageRunner, purify_parts_cached
from genlab.train.classifier import ClassifierConfig


def attacks(poison_fraction: float) -> list:
    """Return the three attack configs at `poison_fraction` (Narcissus with a quick trigger search)."""
    return [BadNetsConfig(poison_fraction=poison_fraction), BlendConfig(poison_fraction=poison_fraction),
            NarcissusConfig(poison_fraction=poison_fraction, trigger_steps=40, surrogate=ClassifierConfig(epochs=2))]


def poisoned_copy(train: ImageSet, poison: PoisonSet) -> np.ndarray:
    """Return the training images with the poison's rows replaced (uint8 NHWC)."""
    images = train.images.copy()
    images[poison.base_indices] = poison.images
    return images


def in_process_runner(purifier: EbmPurifier) -> StageRunner:
    """Return a stage runner that purifies with `purifier` in this process (same call the stage's actors make)."""
    def run(images: np.ndarray, labels: np.ndarray, row_ids: np.ndarray, settings: PurifierSettings, seed: int,
            stage: PurificationStageConfig) -> PurifiedImages:
        start = time.perf_counter()
        by_steps = purifier.purify(images, row_ids)
        return PurifiedImages(row_ids, by_steps, images_per_s=len(images) / (time.perf_counter() - start))
    return run


def genlab_sweep(train: ImageSet, poisons: dict[str, PoisonSet], settings: EbmSettings, purifier: EbmPurifier,
                 cache: PurificationCache, seeds: int) -> dict[tuple[str, int], np.ndarray]:
    """Return {(attack, T): purified training images} the way the sweep builds them; every seed asks again."""
    row_ids = np.arange(len(train), dtype=np.int64)
    parts = [StageInput(train.images, train.labels, row_ids)]
    parts += [StageInput(p.images, p.labels, p.base_indices) for p in poisons.values()]
    out = {}
    for _ in range(seeds):
        clean, *dirty = purify_parts_cached(parts, settings, 0, PurificationStageConfig(), cache,
                                            run=in_process_runner(purifier))
        for (attack, poison), part in zip(poisons.items(), dirty):
            for steps in settings.langevin_steps:
                images = clean.by_steps[steps].copy()
                images[poison.base_indices] = part.by_steps[steps]
                out[attack, steps] = images
    return out


def naive_sweep(train: ImageSet, poisons: dict[str, PoisonSet], settings: EbmSettings, purifier_for,
                seeds: int) -> dict[tuple[str, int], np.ndarray]:
    """Return {(attack, T): purified training images}, one fresh chain of T steps per trial (attack, T, seed)."""
    row_ids = np.arange(len(train), dtype=np.int64)
    out = {}
    for _ in range(seeds):
        for attack, poison in poisons.items():
            images = poisoned_copy(train, poison)
            for steps in settings.langevin_steps:
                out[attack, steps] = purifier_for(steps).purify(images, row_ids)[steps]
    return out


def timed(fn, *args):
    """Return (fn(*args), seconds)."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="training images (digits 16x16)")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40], help="Langevin step counts T")
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds per (attack, T): trials = 3 x T x seeds")
    parser.add_argument("--poison-fraction", type=float, default=0.01, help="poisons as a share of the training set")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both ways)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = load_dataset(DatasetConfig(max_train=args.images))
    poisons = {cfg.name: craft_poisons(cfg, train, seed=0) for cfg in attacks(args.poison_fraction)}
    root = Path(tempfile.mkdtemp(prefix="genlab-sweep-cost-"))
    torch.manual_seed(0)
    checkpoint = save_model(root / "ebm", build_ebm(EbmNetConfig(arch="conv", nf=32, channels=1)), kind=EBM_KIND)
    settings = EbmSettings(langevin_steps=args.steps, checkpoint=str(checkpoint), device="cpu")
    print(f"sweep: {len(train)} images, {len(poisons)} attacks "
          f"({', '.join(f'{k} {len(p.base_indices)} poisons' for k, p in poisons.items())}), T={settings.langevin_steps}, "
          f"{args.seeds} seeds -> {len(poisons) * len(settings.langevin_steps) * args.seeds} trials", flush=True)

    purifier = EbmPurifier(settings, seed=0)
    cache = PurificationCache(root / "purified")
    shared, genlab_s = timed(genlab_sweep, train, poisons, settings, purifier, cache, args.seeds)
    genlab_evals = purifier.sampler.gradient_evaluations
    _, second_s = timed(genlab_sweep, train, poisons, settings, purifier, cache, args.seeds)
    second_evals = purifier.sampler.gradient_evaluations - genlab_evals
    print(f"genlab: {genlab_evals} gradient evaluations, {genlab_s:.1f} s; second sweep {second_evals}, "
          f"{second_s:.1f} s", flush=True)

    naive_purifiers = {t: EbmPurifier(settings.model_copy(update={"langevin_steps": [t]}), seed=0)
                       for t in settings.langevin_steps}
    naive, naive_s = timed(naive_sweep, train, poisons, settings, naive_purifiers.__getitem__, args.seeds)
    naive_evals = sum(p.sampler.gradient_evaluations for p in naive_purifiers.values())
    print(f"naive:  {naive_evals} gradient evaluations, {naive_s:.1f} s", flush=True)

    max_diff = max(int(np.abs(shared[k].astype(int) - naive[k].astype(int)).max()) for k in naive)
    print(f"max |genlab - naive| over every (attack, T) training set: {max_diff} pixel levels")
    per_seed_naive = naive_evals / args.seeds
    print(json.dumps({
        "gradient_evaluation_reduction": round(naive_evals / genlab_evals, 2),
        "wall_time_reduction": round(naive_s / genlab_s, 2),
        "gradient_evaluation_reduction_one_seed": round(per_seed_naive / genlab_evals, 2),
        "wall_time_reduction_one_seed": round(naive_s / args.seeds / genlab_s, 2),
        "naive_gradient_evaluations": naive_evals, "genlab_gradient_evaluations": genlab_evals,
        "second_sweep_gradient_evaluations": second_evals, "naive_s": round(naive_s, 2),
        "genlab_s": round(genlab_s, 2), "second_sweep_s": round(second_s, 2), "max_abs_pixel_diff": max_diff,
        "images": len(train), "steps": settings.langevin_steps, "seeds": args.seeds,
        "attacks": list(poisons), "poisons_per_attack": [len(p.base_indices) for p in poisons.values()],
        "threads": args.threads}))


if __name__ == "__main__":
    main()
