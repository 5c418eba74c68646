"""Evaluation of LAVAE and its baselines on a paired test set (spec §3.5).

BCE values are nats per image (pixel BCE summed over the image, averaged over images;
lower is better, not 0 at best because targets are grey). MSE values are per pixel on
[0, 1] images. Involution errors are Frobenius norms ||I - L^2||_F (0 = exact).
"""

from __future__ import annotations

import torch

from genlab.augment.augmentations import augment
from genlab.augment.data import PairedSet
from genlab.augment.pipeline import LatentAugmentPipeline
from genlab.models.latent_maps import LatentMaps
from genlab.models.vae import ConditionalVAE, bce_per_image


def mean_bce(reconstruction: torch.Tensor, target: torch.Tensor) -> float:
    """Return the BCE between two image sets in nats per image (summed over pixels, mean over images)."""
    return bce_per_image(reconstruction.cpu(), target.cpu()).mean().item()


def mean_mse(images: torch.Tensor, target: torch.Tensor) -> float:
    """Return the mean squared pixel difference of two [0,1] image sets (per pixel, in [0, 1])."""
    return torch.mean((images.cpu() - target.cpu()) ** 2).item()


def per_target_bce(pipeline: LatentAugmentPipeline, data: PairedSet, map_pair: tuple[str, str],
                   head: int = 0) -> dict[str, float]:
    """Return BCE (nats/image) of each decoded target through `head` and maps (L1, L2) = `map_pair`.

    Keys: `orig` (z), `<b1>` (z L1), `<b2>` (z L2), `compose` (z L1 L2), `reverse_compose`
    (z L2 L1 against the same a2(a1(x)) target; equal to compose only for commuting pairs),
    `total` (their sum). b1, b2 are the pair of `data`.
    """
    first, second = map_pair
    outputs = {"orig": pipeline(data.orig, [], head), data.pair[0]: pipeline(data.orig, [first], head),
               data.pair[1]: pipeline(data.orig, [second], head), "compose": pipeline(data.orig, [first, second], head),
               "reverse_compose": pipeline(data.orig, [second, first], head)}
    targets = {**data.targets(), "reverse_compose": data.compose}
    scores = {key: mean_bce(output, targets[key]) for key, output in outputs.items()}
    return {**scores, "total": sum(scores.values())}


def direct_reconstruction_bce(pipeline: LatentAugmentPipeline, data: PairedSet) -> float:
    """Return the VAE floor: BCE (nats/image) of decode(mu(a(x))) vs a(x), averaged over a1 and a2."""
    return sum(mean_bce(pipeline(images, []), images) for images in (data.first, data.second)) / 2


def mean_shift_outputs(pipeline: LatentAugmentPipeline, train: PairedSet, test: PairedSet) -> dict[str, torch.Tensor]:
    """Return the mean-shift baseline's images for a1, a2 and compose: decode(z + delta), z = mu(x).

    delta_a = mean mu(a(x)) - mean mu(x) over the training set; compose adds both shifts.
    Uses only the stage-1 VAE (encoder and head 0), not the latent maps.
    """
    mean_orig = pipeline.encode(train.orig).mean(0)
    shift_first = pipeline.encode(train.first).mean(0) - mean_orig
    shift_second = pipeline.encode(train.second).mean(0) - mean_orig
    z = pipeline.encode(test.orig)
    return {test.pair[0]: pipeline.decode(z + shift_first), test.pair[1]: pipeline.decode(z + shift_second),
            "compose": pipeline.decode(z + shift_first + shift_second)}


@torch.no_grad()
def cvae_outputs(cvae: ConditionalVAE, data: PairedSet) -> dict[str, torch.Tensor]:
    """Return the CVAE's images (CPU, z = mu) for a1 (c=a1), a2 (c=a2) and compose (multi-hot c = a1 + a2)."""
    cvae.eval()
    images = data.orig.to(next(cvae.parameters()).device)
    hots = {data.pair[0]: [1], data.pair[1]: [2], "compose": [1, 2]}
    return {key: cvae(images, cvae.condition([0], len(images)), cvae.condition(hot, len(images)))[0].cpu()
            for key, hot in hots.items()}


def baseline_bce(outputs: dict[str, torch.Tensor], data: PairedSet) -> dict[str, float]:
    """Return BCE (nats/image) of a baseline's a1 / a2 / compose images against the true augmentations."""
    targets = data.targets()
    return {key: mean_bce(images, targets[key]) for key, images in outputs.items()}


def involution_errors(maps: LatentMaps) -> dict[str, float]:
    """Return ||I - L_a^2||_F for every map (>= 0; 0 = the map is its own inverse)."""
    with torch.no_grad():
        return {name: maps.involution_error(name).item() for name in maps.names}


def inverse_mse(pipeline: LatentAugmentPipeline, images: torch.Tensor, augmented: torch.Tensor,
                name: str) -> dict[str, float]:
    """Return per-pixel MSE of decode(z L_a L_a) to the input x (`to_input`) and to a(x) (`to_augmented`)."""
    twice = pipeline(images, [name, name])
    return {"to_input": mean_mse(twice, images), "to_augmented": mean_mse(twice, augmented)}


def recursive_mse(outputs: list[torch.Tensor], images: torch.Tensor, name: str,
                  generator: torch.Generator) -> list[float]:
    """Return per-pixel MSE of step k of a repeated map to a^k(x), k = 1..len(outputs) (flips: period 2)."""
    errors, target = [], images
    for output in outputs:
        target = augment(target, name, generator)
        errors.append(mean_mse(output, target))
    return errors
