"""Speed paths of the generative purifiers: the official code's loop against the fast one, timed on
the same images in one run and checked to purify alike.

Every generative stage's settings class (`EbmSettings`, `DdpmSettings`: `genlab.purify.network`)
names its two loops in `speed_loops()`: "reference" (fp32, eager, NCHW, batch 128: how the official code runs) and
"optimized" (every speed field `auto`: the device's fast path, exactly what the sweep runs).
`speed_loop(settings, loop)` sets them on a setting and on every stage nested in it, so the
PureGen combinations (`puregen-naive`, `-reps`, `-filt`) get both loops as well.
`compare_speed_paths` times two settings on the same images and reports `vs_reference_loop`.

Measurement code, not library code: `bench/purify_throughput.py` imports it (a bench script has
`bench/` on its path), and so do the tests that check the fast loop purifies as the reference one
does (pytest puts `bench/` on the path, pyproject.toml).
"""

from __future__ import annotations

import time
from typing import Literal, TypeVar

import numpy as np
import torch

from genlab.config import StrictModel
from genlab.purify import build_purifier
from genlab.purify.base import Purifier, PurifierSettings
from genlab.purify.network import NetworkSettings

SettingsT = TypeVar("SettingsT", bound=StrictModel)
Loop = Literal["reference", "optimized"]


def speed_loop(settings: SettingsT, loop: Loop, **overrides: object) -> SettingsT:
    """Return `settings` with the speed fields of `loop` on it and on every nested generative stage.

    `overrides` (e.g. `compile=False`) replace the loop's own values in every stage it touches.
    Settings without speed loops (baselines, the filt energy scorer) are returned unchanged.
    """
    update = {name: speed_loop(value, loop, **overrides) for name in type(settings).model_fields
              if isinstance(value := getattr(settings, name), StrictModel)}
    if isinstance(settings, NetworkSettings):
        update.update({**settings.speed_loops()[loop], **overrides})
    return settings.model_copy(update=update)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure_purify(purifier: Purifier, images: np.ndarray, row_ids: np.ndarray, *,
                   repeats: int = 1) -> tuple[dict[int, np.ndarray], float]:
    """Return (purified images, images/s) of the fastest of `repeats` timed `purify` calls, after an untimed warm-up
    call on the same images.

    The warm-up pays one-off costs (torch.compile, cuDNN autotuning, allocator growth), so the
    figure is the steady-state rate; images/s counts input images, whatever the number of snapshots.
    """
    purifier.purify(images, row_ids)
    best = 0.0
    for _ in range(repeats):
        _sync()
        start = time.perf_counter()
        out = purifier.purify(images, row_ids)
        _sync()
        best = max(best, len(images) / (time.perf_counter() - start))
    return out, best


def compare_speed_paths(reference: PurifierSettings, optimized: PurifierSettings, images: np.ndarray,
                        row_ids: np.ndarray, *, seed: int = 0, repeats: int = 1) -> dict[str, float]:
    """Time two ways of running the same purification on the same uint8 NHWC images and check they purify alike.

    Typically `reference = speed_loop(s, "reference")` and `optimized = speed_loop(s, "optimized")`.
    Each loop's rate is the fastest of `repeats` timed calls (`measure_purify`). Returns `reference_images_per_s`, `optimized_images_per_s`, their ratio `vs_reference_loop`,
    the mean absolute change each makes to the images (`*_mean_abs_change`, pixel units 0..255)
    and the `mean_abs_difference` between the two outputs (pixel units), over every snapshot.
    """
    outputs, rates = [], []
    for settings in (reference, optimized):
        out, images_per_s = measure_purify(build_purifier(settings, seed=seed), images, row_ids, repeats=repeats)
        outputs.append(np.stack([out[t] for t in sorted(out)]).astype(np.float32))
        rates.append(images_per_s)
    original = images.astype(np.float32)[None]
    return {"reference_images_per_s": rates[0], "optimized_images_per_s": rates[1], "vs_reference_loop": rates[1] / rates[0],
            "reference_mean_abs_change": float(np.abs(outputs[0] - original).mean()),
            "optimized_mean_abs_change": float(np.abs(outputs[1] - original).mean()),
            "mean_abs_difference": float(np.abs(outputs[1] - outputs[0]).mean())}
