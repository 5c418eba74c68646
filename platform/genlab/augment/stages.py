"""The three LAVAE training stages (spec §3.3) and the CVAE baseline, each with its own AdaBelief.

1. `train_autoencoder`  (ED): a VAE on the union of x, a1(x), a2(x): BCE_sum + lambda_KL KL.
2. `train_latent_maps`  (LA): encoder and decoder frozen; only the L_a train, on
   sum_a MSE(z_orig L_a, z_a) + lambda_inv sum_{a involutive} ||I - L_a^2||_F^2 (lambda_inv ramped up)
   (+ lambda_comp MSE(z_orig L_1 L_2, z_compose), 0 by default: composition is not trained).
3. `train_transfer_head`: encoder and maps frozen; a fresh decoder head learns the four
   targets of a new pair (b1, b2) from z, z L_1, z L_2, z L_1 L_2 (z = mu).
`train_cvae`: the conditional VAE on (x, c_in = orig) -> (x_c, c_out = c), c in {orig, a1, a2}.

Every stage calls `on_epoch(epoch, {loss name: epoch mean})` after each epoch (epochs
count from 1) and raises `TrainingDivergedError` on a non-finite loss.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Optional

import torch
import torch.nn.functional as F
from pydantic import Field

from genlab.augment.augmentations import is_involutive
from genlab.augment.data import PairedSet
from genlab.augment.optim import AdaBelief
from genlab.config import StrictModel
from genlab.errors import TrainingDivergedError
from genlab.models.latent_maps import LatentMaps
from genlab.models.vae import ConditionalVAE, LatentAugmentVAE, bce_per_image, kl_per_image, sample_latent

EpochCallback = Callable[[int, dict[str, float]], None]
StepLosses = Callable[[torch.Tensor, int], dict[str, torch.Tensor]]  # (batch indices, epoch) -> named losses


class StageConfig(StrictModel):
    """One training stage: epochs over its data, minibatch size, AdaBelief learning rate."""

    epochs: int = Field(10, ge=0)  # passes over the stage's training set
    batch_size: int = Field(64, ge=1)  # minibatch size (the LAVAE code uses 64)
    lr: float = Field(1e-3, gt=0)  # AdaBelief learning rate (eps 1e-16, betas 0.9/0.999 as in the code)


class TrainingConfig(StrictModel):
    """The stages, loss weights and what stage 1 sees."""

    autoencoder: StageConfig = Field(default_factory=lambda: StageConfig(epochs=20))  # stage 1 (ED); code: 100
    latent_maps: StageConfig = Field(default_factory=lambda: StageConfig(epochs=200))  # stage 2 (LA); code: 60 on MNIST
    transfer_head: StageConfig = Field(default_factory=lambda: StageConfig(epochs=10))  # stage 3, per head; code: 100
    cvae: StageConfig = Field(default_factory=lambda: StageConfig(epochs=20))  # the CVAE baseline
    kl_weight: float = Field(1.0, ge=0)  # lambda_KL of stage 1 and the CVAE (the code's effective 1, not its unused 5)
    involution_weight: float = Field(4.0, ge=0)  # lambda_inv on ||I - L_a^2||_F^2, involutive a only (slides: 1)
    involution_warmup_epochs: int = Field(50, ge=0)  # stage-2 epochs over which lambda_inv ramps up from 0 (code: 0)
    compose_weight: float = Field(0.0, ge=0)  # lambda_comp on MSE(z L1 L2, z_compose); 0 = composition untrained
    compose_in_autoencoder: bool = False  # stage 1 also sees a2(a1(x)) (the LAVAE code does; off keeps it unseen)


def _run_epochs(stage: StageConfig, params: Iterable[torch.nn.Parameter], size: int, step_losses: StepLosses, *,
                generator: torch.Generator, on_epoch: Optional[EpochCallback], what: str) -> None:
    """Minimise `step_losses(batch_indices, epoch)["loss"]` over shuffled minibatches of range(size)."""
    optimizer = AdaBelief(params, lr=stage.lr)
    for epoch in range(1, stage.epochs + 1):
        order = torch.randperm(size, generator=generator)
        sums: dict[str, float] = defaultdict(float)
        for start in range(0, size, stage.batch_size):
            index = order[start:start + stage.batch_size]
            losses = step_losses(index, epoch)
            if not torch.isfinite(losses["loss"]):
                raise TrainingDivergedError(f"{what} loss is {losses['loss'].item()} at epoch {epoch}; lower its lr")
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            for key, value in losses.items():
                sums[key] += value.item() * len(index)
        if on_epoch is not None:
            on_epoch(epoch, {key: value / size for key, value in sums.items()})


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def train_autoencoder(vae: LatentAugmentVAE, images: torch.Tensor, stage: StageConfig, *, kl_weight: float,
                      generator: torch.Generator, on_epoch: Optional[EpochCallback] = None) -> None:
    """Stage 1: train the encoder and head 0 as a VAE on `images` [N,1,D,D] in [0,1] (losses in nats/image)."""
    device = _device_of(vae)
    vae.train()

    def step(index: torch.Tensor, _epoch: int) -> dict[str, torch.Tensor]:
        batch = images[index].to(device)
        mu, logvar = vae.encode(batch)
        bce = bce_per_image(vae.decode(sample_latent(mu, logvar, generator)), batch).mean()
        kl = kl_per_image(mu, logvar).mean()
        return {"loss": bce + kl_weight * kl, "bce": bce, "kl": kl}

    _run_epochs(stage, [*vae.encoder.parameters(), *vae.decoders[0].parameters()], len(images), step,
                generator=generator, on_epoch=on_epoch, what="autoencoder")
    vae.eval()


def train_latent_maps(vae: LatentAugmentVAE, maps: LatentMaps, data: PairedSet, stage: StageConfig, *,
                      involution_weight: float, involution_warmup_epochs: int, compose_weight: float,
                      generator: torch.Generator, on_epoch: Optional[EpochCallback] = None) -> None:
    """Stage 2: fit L_a1, L_a2 on reparameterised codes of the frozen encoder (latent MSE per dimension).

    The involution weight ramps linearly from 0 to `involution_weight` over the first
    `involution_warmup_epochs` epochs, so the maps first fit the data and then settle on the
    nearest involution rather than on whichever one the random init was closest to.

    Logged: `latent_mse` (sum over the two maps), `involution` (sum of ||I - L_a^2||_F^2 over the
    involutive maps, the penalised term), `compose_mse` when lambda_comp > 0.
    """
    first, second = data.pair
    sources = {"orig": data.orig, first: data.first, second: data.second}
    if compose_weight > 0:
        sources["compose"] = data.compose
    posteriors = {key: vae.posterior(images) for key, images in sources.items()}
    involutive = [name for name in data.pair if is_involutive(name)]
    zero = torch.zeros((), device=_device_of(vae))

    def step(index: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        z = {key: sample_latent(mu[index], logvar[index], generator) for key, (mu, logvar) in posteriors.items()}
        latent_mse = sum(F.mse_loss(maps(z["orig"], [name]), z[name]) for name in data.pair)
        involution = sum((maps.involution_error(name) ** 2 for name in involutive), zero)
        losses = {"latent_mse": latent_mse, "involution": involution}
        loss = latent_mse + involution_weight * min(1.0, epoch / max(1, involution_warmup_epochs)) * involution
        if compose_weight > 0:
            losses["compose_mse"] = F.mse_loss(maps(z["orig"], data.pair), z["compose"])
            loss = loss + compose_weight * losses["compose_mse"]
        return {"loss": loss, **losses}

    _run_epochs(stage, maps.parameters(), len(data), step, generator=generator, on_epoch=on_epoch, what="latent-map")


def train_transfer_head(vae: LatentAugmentVAE, maps: LatentMaps, head: int, data: PairedSet,
                        map_pair: tuple[str, str], stage: StageConfig, *, generator: torch.Generator,
                        on_epoch: Optional[EpochCallback] = None) -> None:
    """Stage 3: train decoder `head` to decode z, z L1, z L2, z L1 L2 into x, b1(x), b2(x), b2(b1(x)).

    `map_pair` names the trained maps (L1, L2); `data` holds the new pair's images. Loss: BCE
    summed over the four targets, nats per base image.
    """
    mu, _ = vae.posterior(data.orig)
    with torch.no_grad():
        codes = [mu, maps(mu, map_pair[:1]), maps(mu, map_pair[1:]), maps(mu, map_pair)]
    targets = [data.orig, data.first, data.second, data.compose]
    decoder = vae.decoders[head].train()

    def step(index: torch.Tensor, _epoch: int) -> dict[str, torch.Tensor]:
        bce = sum(bce_per_image(decoder(code[index]), target[index].to(code.device)).mean()
                  for code, target in zip(codes, targets))
        return {"loss": bce}

    _run_epochs(stage, decoder.parameters(), len(data), step, generator=generator, on_epoch=on_epoch,
                what="transfer-head")
    decoder.eval()


def train_cvae(cvae: ConditionalVAE, data: PairedSet, stage: StageConfig, *, kl_weight: float,
               generator: torch.Generator, on_epoch: Optional[EpochCallback] = None) -> None:
    """Train the CVAE on x -> {x, a1(x), a2(x)} with conditions orig=0, a1=1, a2=2 (composition held out)."""
    device = _device_of(cvae)
    targets = [data.orig, data.first, data.second]
    cvae.train()

    def step(index: torch.Tensor, _epoch: int) -> dict[str, torch.Tensor]:
        n = len(index)
        inputs = data.orig[index].to(device).repeat(len(targets), 1, 1, 1)
        wanted = torch.cat([target[index] for target in targets]).to(device)
        condition_in = cvae.condition([0], len(inputs))
        condition_out = torch.cat([cvae.condition([k], n) for k in range(len(targets))])
        reconstruction, mu, logvar = cvae(inputs, condition_in, condition_out, generator)
        bce = bce_per_image(reconstruction, wanted).mean()
        kl = kl_per_image(mu, logvar).mean()
        return {"loss": bce + kl_weight * kl, "bce": bce, "kl": kl}

    _run_epochs(stage, cvae.parameters(), len(data), step, generator=generator, on_epoch=on_epoch, what="cvae")
    cvae.eval()
