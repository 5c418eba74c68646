"""One LAVAE experiment, start to finish, in one process: train every model, evaluate, draw grids.

For each trained pair (a1, a2): stage 1 and stage 2 (`stages.py`), the CVAE and mean-shift
baselines, per-target losses, involution and inverse checks, recursive stability, and one
transfer head (stage 3) per transfer pair. Used as is by the job, and inside each Ray Tune
trial of a sweep. Writes grids, the transfer heatmap and the models under `artifact_dir`.

Top of the summary (test set of the first, "headline" pair; BCE in nats/image, lower is better):
  latent_map_bce          decode(z L_a) vs a(x), mean over a1 and a2
  vae_recon_bce           the VAE floor: decode(mu(a(x))) vs a(x), mean over a1 and a2
  compose_bce_lavae       decode(z L1 L2) vs a2(a1(x)); composition never trained
  compose_bce_cvae        the CVAE with the multi-hot condition a1 + a2 (never trained on it)
  compose_bce_meanshift   decode(z + delta_a1 + delta_a2), deltas = mean code shifts on the train set
  involution_error_flips  max ||I - L^2||_F over the maps of involutive augmentations, every pair
  involution_error_other  min ||I - L^2||_F over the other maps (None when there are none)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genlab.augment.augmentations import is_involutive
from genlab.augment.config import LatentAugmentConfig
from genlab.augment.data import PairedSet, paired_set
from genlab.augment.metrics import (
    baseline_bce,
    cvae_outputs,
    direct_reconstruction_bce,
    inverse_mse,
    involution_errors,
    mean_shift_outputs,
    per_target_bce,
    recursive_mse,
)
from genlab.augment.pipeline import LatentAugmentPipeline
from genlab.augment.report import save_rows, save_transfer_heatmap
from genlab.augment.stages import EpochCallback, train_autoencoder, train_cvae, train_latent_maps, train_transfer_head
from genlab.data import ImageSet
from genlab.data.convert import UNIT, to_tensor
from genlab.models.latent_maps import LatentMaps
from genlab.models.vae import ConditionalVAE, LatentAugmentVAE, VAEConfig
from genlab.runtime import derive_seed, resolve_device, seeded_generator

PAIR_KEYS = ("latent_map_bce", "vae_recon_bce", "compose_bce_lavae", "compose_bce_cvae", "compose_bce_meanshift")
SUMMARY_KEYS = PAIR_KEYS + ("involution_error_flips", "involution_error_other")  # top of summary.json


@dataclass
class ExperimentResult:
    """The summary (JSON-ready: headline keys, per-pair results, transfer matrix) and per-epoch losses."""

    summary: dict[str, Any]
    history: list[tuple[str, float, int]]  # (metric key, value, epoch)


def pair_tag(pair: tuple[str, str]) -> str:
    """Return the name of a pair in metric keys and folders: `a1-a2`."""
    return f"{pair[0]}-{pair[1]}"


class _Run:
    """The state one experiment shares across pairs: config, device, paired data, loss history."""

    def __init__(self, cfg: LatentAugmentConfig, train: ImageSet, test: ImageSet, artifact_dir: Path) -> None:
        self.cfg, self.artifact_dir = cfg, artifact_dir
        self.device = resolve_device(cfg.device)
        self.train_images, self.test_images = to_tensor(train.images, UNIT), to_tensor(test.images, UNIT)
        self.vae_config = VAEConfig(image_size=self.train_images.shape[-1], **cfg.model.model_dump())
        self.history: list[tuple[str, float, int]] = []
        self.started = time.perf_counter()
        self._paired: dict[tuple[tuple[str, str], str], PairedSet] = {}

    def paired(self, pair: tuple[str, str], split: str) -> PairedSet:
        """Return the train or test PairedSet of `pair` (built once)."""
        if (pair, split) not in self._paired:
            images = self.train_images if split == "train" else self.test_images
            self._paired[pair, split] = paired_set(images, pair, seed=self.cfg.seed, split=split)
        return self._paired[pair, split]

    def recorder(self, key: str) -> EpochCallback:
        """Return an epoch callback that appends `<key>.<loss>` values to the history."""
        return lambda epoch, losses: self.history.extend((f"{key}.{name}", value, epoch)
                                                         for name, value in losses.items())

    def log(self, message: str) -> None:
        """Print one progress line with the elapsed time."""
        print(f"[genlab] {time.perf_counter() - self.started:6.1f}s  {message}", flush=True)

    def seed_weights(self, *labels: str) -> None:
        """Seed torch's global generator (weight initialisation) from the config seed and the labels."""
        torch.manual_seed(derive_seed(self.cfg.seed, *labels))


def run_experiment(cfg: LatentAugmentConfig, train: ImageSet, test: ImageSet, artifact_dir: Path) -> ExperimentResult:
    """Train and evaluate every pair of `cfg` on grey-scale `train` / `test`; write artifacts; return the result."""
    run = _Run(cfg, train, test, Path(artifact_dir))
    pairs: dict[str, dict[str, Any]] = {}
    transfer: dict[str, dict[str, dict[str, float]]] = {}
    for pair in cfg.pairs:
        tag = pair_tag(pair)
        pipeline = _train_lavae(run, pair)
        pairs[tag] = _evaluate(run, pipeline, pair)
        transfer[tag] = {pair_tag(target): _transfer(run, pipeline, pair, target) for target in cfg.transfer_pairs}
        pipeline.save(run.artifact_dir / tag / "model")
    headline = pairs[pair_tag(cfg.pairs[0])]
    errors = [(name, error) for result in pairs.values() for name, error in result["involution_error"].items()]
    flips = [error for name, error in errors if is_involutive(name)]
    others = [error for name, error in errors if not is_involutive(name)]
    summary = {key: headline[key] for key in PAIR_KEYS}
    summary.update({
        "involution_error_flips": max(flips) if flips else None,  # worst involutive map (flips, rotate180)
        "involution_error_other": min(others) if others else None,  # best non-involutive map
        "headline_pair": pair_tag(cfg.pairs[0]),
        "dataset": {"name": cfg.data.name, "train": len(train), "test": len(test), "hash": train.hash,
                    "image_size": run.vae_config.image_size},
        "pairs": pairs,
    })
    if cfg.transfer_pairs:
        columns = [pair_tag(p) for p in cfg.transfer_pairs]
        matrix = [[transfer[row][column]["total"] for column in columns] for row in pairs]
        save_transfer_heatmap(matrix, list(pairs), columns, run.artifact_dir / "transfer_matrix.png")
        summary["transfer_matrix"] = {"rows": list(pairs), "columns": columns, "total_bce": matrix,
                                      "per_target_bce": transfer}
    run.log("done")
    return ExperimentResult(summary, run.history)


def _train_lavae(run: _Run, pair: tuple[str, str]) -> LatentAugmentPipeline:
    """Stages 1 and 2 for `pair`: the VAE on x, a1(x), a2(x) (+ a2(a1(x)) if configured), then the maps."""
    tag, training, data = pair_tag(pair), run.cfg.training, run.paired(pair, "train")
    run.seed_weights(tag, "lavae")
    vae = LatentAugmentVAE(run.vae_config).to(run.device)
    maps = LatentMaps(pair, run.vae_config.latent_dim).to(run.device)
    images = [data.orig, data.first, data.second] + ([data.compose] if training.compose_in_autoencoder else [])
    run.log(f"{tag}: stage 1, VAE on {sum(len(i) for i in images)} images, {training.autoencoder.epochs} epochs")
    train_autoencoder(vae, torch.cat(images), training.autoencoder, kl_weight=training.kl_weight,
                      generator=seeded_generator(run.cfg.seed, tag, "autoencoder"),
                      on_epoch=run.recorder(f"{tag}.autoencoder"))
    run.log(f"{tag}: stage 2, latent maps, {training.latent_maps.epochs} epochs")
    train_latent_maps(vae, maps, data, training.latent_maps, involution_weight=training.involution_weight,
                      involution_warmup_epochs=training.involution_warmup_epochs,
                      compose_weight=training.compose_weight, generator=seeded_generator(run.cfg.seed, tag, "maps"),
                      on_epoch=run.recorder(f"{tag}.latent_maps"))
    return LatentAugmentPipeline(vae, maps)


def _train_cvae_baseline(run: _Run, pair: tuple[str, str]) -> ConditionalVAE:
    """Train the CVAE baseline for `pair` (conditions orig, a1, a2; composition held out)."""
    tag, training = pair_tag(pair), run.cfg.training
    run.log(f"{tag}: CVAE baseline, {training.cvae.epochs} epochs")
    run.seed_weights(tag, "cvae")
    cvae = ConditionalVAE(run.vae_config, num_conditions=3).to(run.device)
    train_cvae(cvae, run.paired(pair, "train"), training.cvae, kl_weight=training.kl_weight,
               generator=seeded_generator(run.cfg.seed, tag, "cvae"), on_epoch=run.recorder(f"{tag}.cvae"))
    return cvae


def _evaluate(run: _Run, pipeline: LatentAugmentPipeline, pair: tuple[str, str]) -> dict[str, Any]:
    """Return the pair's test metrics (LAVAE vs baselines, involution, inverse, recursion) and draw its grids."""
    tag, test, steps = pair_tag(pair), run.paired(pair, "test"), run.cfg.evaluation.recursive_steps
    scores = per_target_bce(pipeline, test, pair)
    shifted = mean_shift_outputs(pipeline, run.paired(pair, "train"), test)
    conditional = cvae_outputs(_train_cvae_baseline(run, pair), test)
    shifted_bce, conditional_bce = baseline_bce(shifted, test), baseline_bce(conditional, test)
    repeated = {name: pipeline.repeat(test.orig, name, steps) for name in pair}
    result = {
        "latent_map_bce": (scores[pair[0]] + scores[pair[1]]) / 2,
        "vae_recon_bce": direct_reconstruction_bce(pipeline, test),
        "compose_bce_lavae": scores["compose"],
        "compose_bce_cvae": conditional_bce["compose"],
        "compose_bce_meanshift": shifted_bce["compose"],
        "per_target_bce": scores,
        "meanshift_bce": shifted_bce,
        "cvae_bce": conditional_bce,
        "involution_error": involution_errors(pipeline.maps),
        "inverse_mse": {name: inverse_mse(pipeline, test.orig, augmented, name)
                        for name, augmented in zip(pair, (test.first, test.second))},
        "recursive_mse": {name: recursive_mse(outputs, test.orig, name, seeded_generator(run.cfg.seed, tag, name))
                          for name, outputs in repeated.items()},
    }
    _draw(run, pipeline, pair, shifted, conditional, repeated)
    run.log(f"{tag}: compose BCE lavae {result['compose_bce_lavae']:.1f} / cvae {result['compose_bce_cvae']:.1f} / "
            f"mean-shift {result['compose_bce_meanshift']:.1f}; involution {result['involution_error']}")
    return result


def _draw(run: _Run, pipeline: LatentAugmentPipeline, pair: tuple[str, str], shifted: dict[str, torch.Tensor],
          conditional: dict[str, torch.Tensor], repeated: dict[str, list[torch.Tensor]]) -> None:
    """Write the pair's grids: composition (inputs, augmentations, maps, baselines), inverse, repeated maps."""
    first, second = pair
    n, test, folder = run.cfg.evaluation.grid_images, run.paired(pair, "test"), run.artifact_dir / pair_tag(pair)
    x = test.orig[:n]
    save_rows({"input": x, first: test.first[:n], f"z L[{first}]": pipeline(x, [first]),
               second: test.second[:n], f"z L[{second}]": pipeline(x, [second]),
               "composed": test.compose[:n], "z L1 L2": pipeline(x, pair), "z L2 L1": pipeline(x, pair[::-1]),
               "mean-shift": shifted["compose"][:n], "CVAE a1+a2": conditional["compose"][:n]},
              folder / "composition.png")
    save_rows({"input": x, f"z L[{first}]^2": pipeline(x, [first, first]),
               f"z L[{second}]^2": pipeline(x, [second, second])}, folder / "inverse.png")
    for name, outputs in repeated.items():
        save_rows({"input": x, **{f"{name} x{k}": out[:n] for k, out in enumerate(outputs, start=1)}},
                  folder / f"repeated_{name}.png")


def _transfer(run: _Run, pipeline: LatentAugmentPipeline, pair: tuple[str, str],
              target: tuple[str, str]) -> dict[str, float]:
    """Stage 3: a new head decodes `pair`'s maps into `target`'s augmentations; return its test per-target BCE."""
    tag = f"{pair_tag(pair)}.transfer.{pair_tag(target)}"
    run.log(f"{tag}: stage 3 head, {run.cfg.training.transfer_head.epochs} epochs")
    run.seed_weights(tag)
    head = pipeline.add_head(pair_tag(target))
    train_transfer_head(pipeline.vae, pipeline.maps, head, run.paired(target, "train"), pair,
                        run.cfg.training.transfer_head, generator=seeded_generator(run.cfg.seed, tag),
                        on_epoch=run.recorder(tag))
    return per_target_bce(pipeline, run.paired(target, "test"), pair, head)
