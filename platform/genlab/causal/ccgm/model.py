"""CCGM, the Causal Counterfactual Generative Model (spec section 6): encoder -> causal layer -> decoder.

The encoder gives the concept posterior q(z|x) = N(mu, diag sigma^2) over n nodes x k dims;
**[choice]** the exogenous noise of the spec's q(eps|x) is its image under the causal layer's
inverse (`abduct`: eps_j = z_j for exogenous j, (z_j - g_j) / s_j otherwise), so
KL(q(eps|x) || N(0, I)) = KL(q(z|x) || p(z)) with p the causal layer's prior (KL is invariant
under an invertible map) and is estimated from one sample of z. Losses (spec 6.3):

    L = Rec(x, D(z)) + alpha KL(q(z|x) || p(z)) + beta sum_j KL(q(z_j|x) || N(u'_j 1_k, tau^2 I))
        + gamma sum_{j not in E} ||zbar_j - g_j(W[:, j] zbar)||^2
        + delta (sum_{j not in E} ||u'_j - g_j(W[:, j] u')||^2 + sum_j ||u'_j - r_j(z_j)||^2) + lambda_1 penalty

u' are the labels in standardised units (tabular: the row itself), r_j a linear read-out, tau
= `label_prior_sd` (CausalVAE: 1; **[choice]** 0.1 by default so decoded samples are not shrunk
toward the mean by posterior noise), and the penalty is the L1 of the gates (weight l1, CCGM) or
CausalVAE's 3 h(A) + 0.5 h(A)^2 (weight `acyclicity`, 1 as in CausalVAE's code; the CausalVAE
layer's KL is on eps = (I - A^T) z, as in CausalVAE). Rec is MSE summed over variables (tabular) or BCE summed
over pixels (images). Tabular coders are per-variable scalar MLPs (CVGen, spec 5.3); image
coders are the small conv encoder / decoder of genlab.models.vae on grayscale images.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from genlab.causal.ccgm.layers import CausalVAELayer, CCGMCausalLayer
from genlab.causal.graph import CausalGraph, GraphSpec, build_graph
from genlab.config import StrictModel
from genlab.models.causal import DECODER, LOGVAR_ENCODER, MEAN_ENCODER, NodeNets
from genlab.models.vae import Decoder, Encoder, VAEConfig, bce_per_image

CHECKPOINT_KIND = "ccgm"
EXOGENOUS_BANK_ROWS = 4096  # encoded training rows kept for sampling exogenous nodes (aggregate posterior)


class LossWeights(StrictModel):
    """Weights of the CCGM loss terms (spec 6.3; defaults = CausalVAE's effective weights)."""

    alpha: float = Field(1.0, ge=0)  # KL(q(eps|x) || N(0, I))
    beta: float = Field(1.0, ge=0)  # conditional prior KL(q(z_j|x) || N(u'_j, tau^2))
    gamma: float = Field(1.0, ge=0)  # mechanism (mask) loss on the latents
    delta: float = Field(1.0, ge=0)  # label loss: mechanisms on labels + label read-out
    l1: float = Field(1e-3, ge=0)  # lambda_1: L1 on the gates (CCGM layer)
    acyclicity: float = Field(1.0, ge=0)  # weight of CausalVAE's 3 h(A) + 0.5 h(A)^2 (its code: 1; CausalVAE layer)


class CCGMSettings(StrictModel):
    """Shape of a CCGM (serialised with the model)."""

    causal_layer: Literal["ccgm", "causalvae"] = "ccgm"  # ccgm: gated DAG-masked layer; causalvae: the baseline
    edge_prior: Literal["known", "exogenous_endogenous"] = "exogenous_endogenous"  # which edges are learned gates
    concept_dim: int = Field(1, ge=1)  # k latent dims per node (tabular: 1, as CVGen; images: 4, as CausalVAE)
    mechanism_hidden: list[int] = Field(default_factory=lambda: [32, 32])  # g_j hidden widths
    mechanism_dropout: float = Field(0.0, ge=0, lt=1)  # input dropout (>= 2 parents); > 0 shrinks do() means
    residual_scale: float = Field(0.1, gt=0)  # initial s_j (set from label residuals after the causal phase)
    label_prior_sd: float = Field(0.1, gt=0)  # tau: sd of the conditional prior N(u'_j, tau^2)
    coder_hidden: list[int] = Field(default_factory=lambda: [16])  # tabular per-variable encoder widths
    image_channels: int = Field(16, ge=1)  # images: filters of the first conv layer
    losses: LossWeights = Field(default_factory=LossWeights)


class CCGMConfig(StrictModel):
    """Everything that rebuilds a CCGM: graph, data shape, settings, seed."""

    graph: GraphSpec
    data: Literal["tabular", "image"] = "tabular"
    image_size: int = Field(32, ge=8)  # images: side in pixels (a multiple of 4), one grayscale channel
    settings: CCGMSettings = Field(default_factory=CCGMSettings)
    seed: int = 0


def graph_spec(graph: CausalGraph) -> GraphSpec:
    """Return the spec that rebuilds `graph` (nodes, edges, exogenous set, mechanism hints)."""
    return GraphSpec(name=graph.name, nodes=list(graph.nodes), edges=graph.edges, exogenous=list(graph.exogenous),
                     mechanisms=graph.mechanisms)


class TabularCoder(nn.Module):
    """Per-variable scalar encoders (mu_j, log sigma_j^2 of x_j) and decoders x_hat_j = dec_j(zbar_j)."""

    def __init__(self, n: int, hidden: list[int], seed: int) -> None:
        super().__init__()
        own, nodes = np.eye(n, dtype=np.float32), list(range(n))
        self.mean = NodeNets(own, nodes, hidden, dropout=0.0, seeds=[seed], role=MEAN_ENCODER)
        self.logvar = NodeNets(own, nodes, hidden, dropout=0.0, seeds=[seed], role=LOGVAR_ENCODER)
        self.decoder = NodeNets(own, nodes, hidden[::-1], dropout=0.0, seeds=[seed], role=DECODER)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar), each [B, n, 1], for standardised rows x [B, n]."""
        return self.mean(x.unsqueeze(0))[0].unsqueeze(-1), self.logvar(x.unsqueeze(0))[0].unsqueeze(-1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return rows [B, n] (standardised units) for latents z [B, n, k]."""
        return self.decoder(z.mean(dim=-1).unsqueeze(0))[0]

    def reconstruction_loss(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Return the squared error summed over variables, per row [B] (standardised units^2)."""
        return ((decoded - x) ** 2).sum(dim=1)


class ImageCoder(nn.Module):
    """Conv encoder / decoder (genlab.models.vae) over grayscale images [B, 1, D, D] in [0, 1]."""

    def __init__(self, n: int, k: int, image_size: int, channels: int) -> None:
        super().__init__()
        shape = VAEConfig(channels=channels, latent_dim=n * k, image_size=image_size)
        self.n, self.k = n, k
        self.encoder, self.decoder = Encoder(shape), Decoder(shape)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar), each [B, n, k]."""
        mu, logvar = self.encoder(x)
        return mu.view(-1, self.n, self.k), logvar.view(-1, self.n, self.k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return images [B, 1, D, D] with pixel values in (0, 1)."""
        return self.decoder(z.flatten(1))

    def reconstruction_loss(self, decoded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Return the pixel BCE summed over each image [B] (nats)."""
        return bce_per_image(decoded, x)


class CCGM(nn.Module):
    """Encoder -> causal layer (CCGM or CausalVAE-style) -> decoder, with label statistics as buffers.

    Buffers `label_mean` / `label_std` [n] turn raw label units into the normalised units of
    the latents (u' = (u - mean) / std); `exogenous_bank` [M, n, k] holds encoded training
    latents from which exogenous nodes are drawn when sampling (aggregate posterior).
    """

    def __init__(self, config: CCGMConfig) -> None:
        super().__init__()
        self.config = config
        settings = config.settings
        self.graph = build_graph(config.graph, source=f"graph {config.graph.name}")
        n, k = len(self.graph.nodes), settings.concept_dim
        if settings.causal_layer == "ccgm":
            self.causal = CCGMCausalLayer(self.graph, edge_prior=settings.edge_prior, hidden=settings.mechanism_hidden,
                                          dropout=settings.mechanism_dropout, residual_scale=settings.residual_scale,
                                          seed=config.seed)
        else:
            self.causal = CausalVAELayer(self.graph, hidden=settings.mechanism_hidden,
                                         dropout=settings.mechanism_dropout, seed=config.seed)
        if config.data == "tabular":
            self.coder = TabularCoder(n, settings.coder_hidden, config.seed)
        else:
            with torch.random.fork_rng(devices=[]):  # torch's default conv init draws from the global generator
                torch.manual_seed(config.seed)
                self.coder = ImageCoder(n, k, config.image_size, settings.image_channels)
        self.readout_weight = nn.Parameter(torch.full((n, k), 1.0 / k))
        self.readout_bias = nn.Parameter(torch.zeros(n))
        self.register_buffer("label_mean", torch.zeros(n))
        self.register_buffer("label_std", torch.ones(n))
        self.register_buffer("exogenous_bank", torch.zeros(EXOGENOUS_BANK_ROWS, n, k))

    @property
    def num_nodes(self) -> int:
        """Return n, the number of nodes."""
        return len(self.graph.nodes)

    def normalise(self, labels: torch.Tensor) -> torch.Tensor:
        """Return labels in normalised units u' = (u - label_mean) / label_std (any leading shape)."""
        return (labels - self.label_mean) / self.label_std

    def denormalise(self, values: torch.Tensor) -> torch.Tensor:
        """Return normalised values back in raw label units."""
        return values * self.label_std + self.label_mean

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mu, logvar) of q(z|x), each [B, n, k]."""
        return self.coder.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Return decoded data: rows [B, n] (tabular, normalised units) or images [B, 1, D, D] in (0, 1)."""
        return self.coder.decode(z)

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        """Return the label read-out u_hat [B, n] = r_j(z_j) (normalised units)."""
        return (z * self.readout_weight).sum(dim=-1) + self.readout_bias

    def loss_terms(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return each loss term (scalars, batch means) for inputs x and normalised labels [B, n]."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        log_q = (-0.5 * (z - mu) ** 2 / logvar.exp() - 0.5 * logvar - 0.5 * np.log(2 * np.pi)).sum(dim=(1, 2))
        tau2 = self.config.settings.label_prior_sd ** 2
        target = labels.unsqueeze(-1)
        label_kl = 0.5 * ((logvar.exp() + (mu - target) ** 2) / tau2 - 1.0 - logvar + np.log(tau2)).sum(dim=(1, 2))
        return {"reconstruction": self.coder.reconstruction_loss(self.decode(z), x).mean(),
                "kl": (log_q - self.causal.log_prior(z)).mean(),
                "label_kl": label_kl.mean(),
                "mechanism": self.causal.mechanism_error(z.mean(dim=-1)).mean(),
                "label": (self.causal.mechanism_error(labels) + ((labels - self.readout(z)) ** 2).sum(dim=1)).mean(),
                "penalty": self.causal.penalty()}

    def total_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the weighted sum of `loss_terms` (spec 6.3)."""
        w = self.config.settings.losses
        penalty = w.l1 if self.config.settings.causal_layer == "ccgm" else w.acyclicity
        return (terms["reconstruction"] + w.alpha * terms["kl"] + w.beta * terms["label_kl"] + w.gamma * terms["mechanism"]
                + w.delta * terms["label"] + penalty * terms["penalty"])

    @torch.no_grad()
    def set_exogenous_bank(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """Keep the posterior means of EXOGENOUS_BANK_ROWS training inputs x (drawn with replacement if fewer)."""
        if len(x) >= EXOGENOUS_BANK_ROWS:
            rows = torch.randperm(len(x), generator=generator)[:EXOGENOUS_BANK_ROWS]
        else:
            rows = torch.randint(len(x), (EXOGENOUS_BANK_ROWS,), generator=generator)
        self.exogenous_bank.copy_(self.encode(x[rows])[0])

    def prior_noise(self, num_samples: int, generator: torch.Generator) -> torch.Tensor:
        """Return eps [num_samples, n, k]: N(0, I), exogenous nodes replaced by bank rows (aggregate posterior).

        Each exogenous node gets its own random bank rows: the DAG makes exogenous nodes
        independent, so a chance correlation between them in the training sample is not copied.
        """
        k = self.config.settings.concept_dim
        eps = torch.randn(num_samples, self.num_nodes, k, generator=generator)
        for node in np.flatnonzero(self.graph.exogenous_mask()):
            rows = torch.randint(len(self.exogenous_bank), (num_samples,), generator=generator)
            eps[:, node] = self.exogenous_bank[rows, node]
        return eps
