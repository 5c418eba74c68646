"""Networks only: the LAVAE conv encoder / decoder heads (spec §3.1) and the conditional VAE baseline.

Encoder: Conv(1->F, k4 s2 p1)-ReLU-Conv(F->2F, k4 s2 p1)-ReLU-flatten -> linear heads mu, log sigma^2 in R^d.
Decoder: Linear(d -> 2F (D/4)^2) -> ConvT(2F->F, k4 s2 p1)-ReLU -> ConvT(F->1, k4 s2 p1) -> sigmoid.
The conditional VAE concatenates a condition vector to the encoder features and to z.
The per-image VAE losses are in nats: pixel BCE summed over the image, and the Gaussian KL term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from genlab.config import StrictModel


class NetworkSize(StrictModel):
    """Width of the LAVAE / CVAE networks (the config's `model` section)."""

    channels: int = Field(16, ge=1)  # F: filters of the first conv, the second has 2F (spec: 64 or 128 on MNIST)
    latent_dim: int = Field(8, ge=1)  # d: latent dimension, so each map L_a is d x d (spec: 16 or 8)


class VAEConfig(NetworkSize):
    """Shape of the LAVAE networks (serialised with every saved model)."""

    image_size: int = Field(16, ge=8)  # D: image side in pixels, a multiple of 4


class Encoder(nn.Module):
    """Maps images [N,1,D,D] in [0,1] (plus an optional condition [N,k]) to (mu, logvar), each [N,d]."""

    def __init__(self, cfg: VAEConfig, *, condition_dim: int = 0) -> None:
        super().__init__()
        f, side = cfg.channels, cfg.image_size // 4
        self.features = nn.Sequential(nn.Conv2d(1, f, 4, 2, 1), nn.ReLU(), nn.Conv2d(f, 2 * f, 4, 2, 1), nn.ReLU(),
                                      nn.Flatten())
        self.mu = nn.Linear(2 * f * side * side + condition_dim, cfg.latent_dim)
        self.logvar = nn.Linear(2 * f * side * side + condition_dim, cfg.latent_dim)

    def forward(self, images: torch.Tensor, condition: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) of q(z|x[, c]), each [N, d]."""
        features = self.features(images)
        if condition is not None:
            features = torch.cat([features, condition], dim=1)
        return self.mu(features), self.logvar(features)


class Decoder(nn.Module):
    """Maps latents [N,d] (plus an optional condition [N,k]) to images [N,1,D,D] in (0,1)."""

    def __init__(self, cfg: VAEConfig, *, condition_dim: int = 0) -> None:
        super().__init__()
        f, self.side = cfg.channels, cfg.image_size // 4
        self.project = nn.Linear(cfg.latent_dim + condition_dim, 2 * f * self.side * self.side)
        self.deconv = nn.Sequential(nn.ConvTranspose2d(2 * f, f, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(f, 1, 4, 2, 1),
                                    nn.Sigmoid())

    def forward(self, latents: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Return decoded images [N, 1, D, D] with pixel values in (0, 1)."""
        if condition is not None:
            latents = torch.cat([latents, condition], dim=1)
        hidden = self.project(latents)
        return self.deconv(hidden.view(len(hidden), -1, self.side, self.side))


def sample_latent(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Return z = mu + sigma * eps, eps ~ N(0, I) drawn from `generator` (the reparameterisation trick)."""
    eps = torch.randn(mu.shape, generator=generator).to(mu)
    return mu + torch.exp(0.5 * logvar) * eps


class LatentAugmentVAE(nn.Module):
    """The LAVAE autoencoder: one encoder and decoder heads (head 0 for the trained pair, 1.. for transfers)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoders = nn.ModuleList([Decoder(cfg)])

    def add_head(self) -> int:
        """Append a freshly initialised decoder head; return its index."""
        self.decoders.append(Decoder(self.config).to(next(self.parameters()).device))
        return len(self.decoders) - 1

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) of q(z|x), each [N, d]; inference uses z = mu."""
        return self.encoder(images)

    def decode(self, latents: torch.Tensor, head: int = 0) -> torch.Tensor:
        """Return images [N, 1, D, D] in (0, 1) decoded by decoder `head`."""
        return self.decoders[head](latents)

    @torch.no_grad()
    def posterior(self, images: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) [N, d] on the model's device for any number of `images`, in eval mode."""
        self.eval()
        device = next(self.parameters()).device
        parts = [self.encode(images[i:i + batch_size].to(device)) for i in range(0, len(images), batch_size)]
        return torch.cat([mu for mu, _ in parts]), torch.cat([logvar for _, logvar in parts])


class ConditionalVAE(nn.Module):
    """The CVAE baseline (spec §3.4): encoder and decoder both see a condition vector (one- or multi-hot)."""

    def __init__(self, cfg: VAEConfig, *, num_conditions: int) -> None:
        super().__init__()
        self.config, self.num_conditions = cfg, num_conditions
        self.encoder = Encoder(cfg, condition_dim=num_conditions)
        self.decoder = Decoder(cfg, condition_dim=num_conditions)

    def condition(self, hot: list[int], size: int) -> torch.Tensor:
        """Return [size, num_conditions] condition vectors with ones at the `hot` positions (one- or multi-hot)."""
        condition = torch.zeros(size, self.num_conditions, device=next(self.parameters()).device)
        condition[:, hot] = 1.0
        return condition

    def forward(self, images: torch.Tensor, condition_in: torch.Tensor, condition_out: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (decoded images [N,1,D,D] in (0,1), mu, logvar); z is sampled when `generator` is given, else mu."""
        mu, logvar = self.encoder(images, condition_in)
        latents = mu if generator is None else sample_latent(mu, logvar, generator)
        return self.decoder(latents, condition_out), mu, logvar

def bce_per_image(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return binary cross-entropy summed over pixels, one value per image ([N], nats, >= 0)."""
    return F.binary_cross_entropy(reconstruction, target, reduction="none").flatten(1).sum(1)


def kl_per_image(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Return KL(N(mu, diag exp(logvar)) || N(0, I)) per row ([N], nats, >= 0)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
