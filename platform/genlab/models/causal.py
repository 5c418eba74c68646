"""Causal Gen, Causal Variational Gen and their baselines (VAE, fully connected predictor).

Every model holds R independent replicas (one per (seed, split) table it is trained on) and
works on stacked rows x float32 [R, B, n] in standardised units: `predict(x)` returns the
reconstruction x_hat [R, B, n], `loss(x)` the training objective per replica [R]. Replicas
never share weights; stacking them only turns many tiny matmuls into a few batched ones.

- Causal Gen (CSHTEST, spec 5.2): one MLP theta_j per endogenous node j, fed the masked row
  `x * S[:, j]` (its parents; zeros elsewhere) and teacher-forced on the observed parents.
  Exogenous nodes pass through unchanged. Input dropout on nodes with two or more parents.
- Causal Variational Gen (CSVHTEST, 5.3): per-variable scalar encoders give z ~ N(mu, sigma^2),
  a Causal Gen layer maps z to z_hat, per-variable decoders give x_hat. Loss MSE (+ beta KL).
- Fully connected predictor (5.4): Causal Gen whose every endogenous node sees all other
  variables (the fully connected hypothesis), same networks and training.
- VAE (5.4, `RowVAE`): MLP encoder and decoder over the whole row; it predicts each endogenous
  column from the row with that column hidden (trained to fill in), not from a row containing it.

Each network is initialised from its own seed `(replica seed, role, node)`: two models whose
node j has the same parents start node j from the same weights and, trained on the same
tables, see the same batches and dropout draws, so candidate graphs are compared with
common random numbers. Inside one model the same holds for replicas in one noise group
(`groups`: candidate graphs batched as replicas of one table share minibatches, dropout
and latent noise), so node j's net trains identically in every candidate that gives it the
same parents, and an error gap between candidates comes from their graphs alone. (The seed tuple is mixed by numpy's SeedSequence, not
genlab.runtime.derive_seed: another mixing would change every trained number.)

`BatchedMLP` and `NodeNets` are also the mechanisms and tabular coders of CCGM
(genlab.causal.ccgm). The training and scoring are genlab.causal.gen.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from genlab.config import StrictModel

SLOPE_MIX = 0.49  # smooth leaky ReLU mixing a: slope 1 - 2a = 0.02 below 0, 1 above
SMOOTH_EPS = float(torch.finfo(torch.float32).eps)  # the kink's smoothing width
NODE_NETS, MEAN_ENCODER, LOGVAR_ENCODER, DECODER = 0, 1, 2, 3  # roles, part of each network's seed


class CausalGenSettings(StrictModel):
    """Causal Gen: one MLP per endogenous node over its parents (teacher forced)."""

    kind: Literal["causal_gen"] = "causal_gen"
    hidden: list[int] = Field(default_factory=lambda: [100, 100])  # theta_j hidden widths (papers: nonlinear SEM)
    dropout: float = Field(0.1, ge=0, lt=1)  # input dropout on nodes with >= 2 parents
    lr: float | None = Field(None, gt=0)  # this model's own (tuned) learning rate; None = train.lr


class FullyConnectedSettings(CausalGenSettings):
    """Fully connected predictor: Causal Gen where every endogenous node sees all other variables."""

    kind: Literal["fully_connected"] = "fully_connected"


class CausalVariationalGenSettings(StrictModel):
    """Causal Variational Gen: scalar encoders -> Causal Gen layer on latents -> scalar decoders."""

    kind: Literal["causal_variational_gen"] = "causal_variational_gen"
    encoder_hidden: list[int] = Field(default_factory=lambda: [4])  # per-variable encoder widths (decoder mirrored)
    hidden: list[int] = Field(default_factory=lambda: [4, 16, 8, 2])  # theta_j hidden widths on the latents
    dropout: float = Field(0.1, ge=0, lt=1)  # input dropout on nodes with >= 2 parents
    beta_kl: float = Field(0.0, ge=0)  # weight of KL(q(z|x) || N(0, I)); 0 = the papers' code
    lr: float | None = Field(None, gt=0)  # this model's own (tuned) learning rate; None = train.lr


class VAESettings(StrictModel):
    """VAE over the whole row (non-causal generative baseline)."""

    kind: Literal["vae"] = "vae"
    hidden: list[int] = Field(default_factory=lambda: [128, 128, 128])  # encoder widths (decoder mirrored)
    latent_dim: int | None = Field(None, ge=1)  # latent size; None = number of variables
    beta_kl: float = Field(1.0, ge=0)  # weight of the KL term (Gaussian decoder, sum of squares)
    lr: float | None = Field(None, gt=0)  # this model's own (tuned) learning rate; None = train.lr


ModelSettings = Annotated[CausalGenSettings | FullyConnectedSettings | CausalVariationalGenSettings | VAESettings,
                          Field(discriminator="kind")]
CausalModelSettings = Annotated[CausalGenSettings | CausalVariationalGenSettings, Field(discriminator="kind")]


def smooth_leaky_relu(x: torch.Tensor) -> torch.Tensor:
    """Return (1 - a) x + a sqrt(x^2 + eps^2) - a eps (a = 0.49): slope 0.02 below 0, 1 above."""
    return (1 - SLOPE_MIX) * x + SLOPE_MIX * torch.sqrt(x * x + SMOOTH_EPS ** 2) - SLOPE_MIX * SMOOTH_EPS


class BatchedMLP(nn.Module):
    """K independent MLPs `n_in -> hidden -> n_out`; net k sees its input row times `masks[k]`.

    `masks` float [K, n_in]; `seeds` K tuples of ints. Net k is initialised like `nn.Linear`
    (uniform +-1/sqrt(fan_in); the first layer's fan_in = its unmasked inputs) from its own
    generator, so its weights depend only on its mask and seed tuple. Input dropout (rate
    `dropout`, training mode only) applies to the nets with two or more unmasked inputs; with
    `noise_rows` (K ints), nets with the same row draw the same dropout pattern.
    """

    def __init__(self, masks: np.ndarray, hidden: list[int], n_out: int, *, dropout: float,
                 seeds: list[tuple[int, ...]], noise_rows: list[int] | None = None) -> None:
        super().__init__()
        k_nets, n_in = masks.shape
        self.register_buffer("masks", torch.as_tensor(masks, dtype=torch.float32).unsqueeze(1))  # [K, 1, n_in]
        keep = 1.0 - dropout * torch.as_tensor(masks.sum(axis=1) >= 2, dtype=torch.float32)
        self.register_buffer("keep", keep.view(k_nets, 1, 1))  # [K, 1, 1] keep probability per net
        self.dropout = dropout
        self.register_buffer("noise_rows", None if noise_rows is None else torch.as_tensor(noise_rows))
        sizes = [n_in, *hidden, n_out]
        weights = [torch.empty(k_nets, a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        biases = [torch.empty(k_nets, 1, b) for b in sizes[1:]]
        for k in range(k_nets):
            state = np.random.SeedSequence(list(seeds[k])).generate_state(1)[0]
            gen = torch.Generator().manual_seed(int(state))
            for layer, (w, b) in enumerate(zip(weights, biases)):
                bound = 1.0 / math.sqrt(max(1.0, float(masks[k].sum())) if layer == 0 else w.shape[1])
                w[k].uniform_(-bound, bound, generator=gen)
                b[k].uniform_(-bound, bound, generator=gen)
        self.weights = nn.ParameterList(nn.Parameter(w) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return outputs [K, B, n_out] for inputs x [K, B, n_in]."""
        h = x * self.masks
        if self.training and self.dropout > 0:
            h = h * self._dropout_draws(h) / self.keep
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if layer < len(self.weights) - 1:
                h = smooth_leaky_relu(h)
        return h

    def _dropout_draws(self, h: torch.Tensor) -> torch.Tensor:
        """Return the keep pattern float {0, 1} [K, B, n_in] of one step (shared by nets of one noise row)."""
        if self.noise_rows is None:
            return torch.bernoulli(self.keep.expand_as(h))
        uniform = torch.rand(int(self.noise_rows.max()) + 1, *h.shape[1:])[self.noise_rows]
        return (uniform < self.keep).float()


class NodeNets(nn.Module):
    """One scalar-output MLP per (replica, selected node): node j of replica r sees x[r] * masks[:, j].

    `masks` float [n, m] (column = the inputs of one selected node), or [R, n, m] for one mask
    set per replica (many candidate graphs trained as one batch); `nodes` the m node indices
    (the seed key of each net), `seeds` one seed per replica, `groups` (optional) one noise
    group per replica: node j's nets in replicas of one group share their dropout draws.
    Maps x [R, B, n] to [R, B, m].
    """

    def __init__(self, masks: np.ndarray, nodes: list[int], hidden: list[int], *, dropout: float,
                 seeds: list[int], role: int, groups: list[int] | None = None) -> None:
        super().__init__()
        self.num_nodes = len(nodes)
        per_replica = masks.transpose(0, 2, 1).reshape(-1, masks.shape[1]) if masks.ndim == 3 else \
            np.tile(masks.T, (len(seeds), 1))
        noise_rows = None if groups is None else [g * len(nodes) + k for g in groups for k in range(len(nodes))]
        self.nets = BatchedMLP(per_replica, hidden, 1, dropout=dropout, noise_rows=noise_rows,
                               seeds=[(seed, role, node) for seed in seeds for node in nodes])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return [R, B, m]: each selected node's net applied to its replica's rows."""
        replicas, batch, _ = x.shape
        out = self.nets(x.repeat_interleave(self.num_nodes, dim=0))  # [R*m, B, 1]
        return out.view(replicas, self.num_nodes, batch).transpose(1, 2)


class CausalGen(nn.Module):
    """Causal Gen: x_hat_j = theta_j(x * S[:, j]) for endogenous j, x_hat_j = x_j for exogenous j.

    `prior` S float [n, n], or [R, n, n] for one prior per replica (candidate graphs as replicas).
    """

    def __init__(self, prior: np.ndarray, exogenous: np.ndarray, hidden: list[int], *, dropout: float,
                 seeds: list[int], groups: list[int] | None = None) -> None:
        super().__init__()
        self.endogenous = [j for j in range(len(exogenous)) if not exogenous[j]]
        self.nets = NodeNets(prior[..., self.endogenous], self.endogenous, hidden, dropout=dropout, seeds=seeds,
                             role=NODE_NETS, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x_hat [R, B, n]: exogenous columns copied, endogenous ones predicted from parents."""
        out = x.clone()
        out[..., self.endogenous] = self.nets(x)
        return out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction x_hat [R, B, n] (standardised units)."""
        return self(x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Return the mean squared error over the endogenous columns per replica [R] (standardised units^2)."""
        return ((self(x) - x)[..., self.endogenous] ** 2).mean(dim=(1, 2))


class CausalVariationalGen(nn.Module):
    """Causal Variational Gen: z_j ~ N(mu_j(x_j), sigma_j(x_j)^2), z_hat = CausalGen(z), x_hat_j = dec_j(z_hat_j)."""

    def __init__(self, prior: np.ndarray, exogenous: np.ndarray, settings: CausalVariationalGenSettings, *,
                 seeds: list[int], groups: list[int] | None = None) -> None:
        super().__init__()
        n = len(exogenous)
        own, nodes = np.eye(n, dtype=np.float32), list(range(n))
        hidden = settings.encoder_hidden
        self.mean_encoder = NodeNets(own, nodes, hidden, dropout=0.0, seeds=seeds, role=MEAN_ENCODER)
        self.logvar_encoder = NodeNets(own, nodes, hidden, dropout=0.0, seeds=seeds, role=LOGVAR_ENCODER)
        self.causal = CausalGen(prior, exogenous, settings.hidden, dropout=settings.dropout, seeds=seeds,
                                groups=groups)
        self.decoder = NodeNets(own, nodes, hidden[::-1], dropout=0.0, seeds=seeds, role=DECODER)
        self.beta_kl = settings.beta_kl
        self.register_buffer("groups", None if groups is None else torch.as_tensor(groups))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (x_hat, mu, logvar), each [R, B, n]; z is sampled in training mode, z = mu otherwise."""
        mu, logvar = self.mean_encoder(x), self.logvar_encoder(x)
        z = mu + torch.exp(0.5 * logvar) * self._latent_noise(mu) if self.training else mu
        return self.decoder(self.causal(z)), mu, logvar

    def _latent_noise(self, mu: torch.Tensor) -> torch.Tensor:
        """Return standard normal noise shaped like mu [R, B, n] (shared by the replicas of one noise group)."""
        if self.groups is None:
            return torch.randn_like(mu)
        return torch.randn(int(self.groups.max()) + 1, *mu.shape[1:])[self.groups]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction x_hat [R, B, n] (standardised units)."""
        return self(x)[0]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Return per replica [R]: MSE over all columns + beta_kl * KL(q(z|x) || N(0, I)) per row."""
        x_hat, mu, logvar = self(x)
        return ((x_hat - x) ** 2).mean(dim=(1, 2)) + self.beta_kl * _kl_standard_normal(mu, logvar)


class RowVAE(nn.Module):
    """VAE over the whole row: MLP encoder to N(mu, sigma^2) over `latent_dim`, MLP decoder back.

    Scored like the predictors, on held-out targets: `predict` fills each endogenous column j
    from the row with column j hidden (set to 0, the train mean) and copies the exogenous ones,
    so the VAE never sees the value it is scored on. It is trained to fill in: each training row
    has one random endogenous column hidden from the encoder and the whole row reconstructed.
    """

    def __init__(self, exogenous: np.ndarray, settings: VAESettings, *, seeds: list[int]) -> None:
        super().__init__()
        num_variables = len(exogenous)
        self.endogenous = [j for j in range(num_variables) if not exogenous[j]]
        self.latent = settings.latent_dim or num_variables
        self.encoder = BatchedMLP(np.ones((len(seeds), num_variables), dtype=np.float32), settings.hidden,
                                  2 * self.latent, dropout=0.0, seeds=[(seed, MEAN_ENCODER) for seed in seeds])
        self.decoder = BatchedMLP(np.ones((len(seeds), self.latent), dtype=np.float32), settings.hidden[::-1],
                                  num_variables, dropout=0.0, seeds=[(seed, DECODER) for seed in seeds])
        self.beta_kl = settings.beta_kl

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (x_hat [R, B, n], mu, logvar [R, B, latent]); z is sampled in training, z = mu otherwise."""
        mu, logvar = self.encoder(x).split(self.latent, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decoder(z), mu, logvar

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Return x_hat [R, B, n]: exogenous columns copied, each endogenous column j decoded from x with j hidden."""
        out = x.clone()
        for j in self.endogenous:
            hidden = x.clone()
            hidden[..., j] = 0.0
            out[..., j] = self(hidden)[0][..., j]
        return out

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Return the negative ELBO per replica [R] of rows with one random endogenous column hidden from the
        encoder: sum of squared errors of the whole row + beta_kl * KL (nats per row)."""
        hidden = x.clone()
        if self.endogenous:
            pick = torch.as_tensor(self.endogenous)[torch.randint(len(self.endogenous), x.shape[:2])]
            hidden.scatter_(-1, pick.unsqueeze(-1), 0.0)
        x_hat, mu, logvar = self(hidden)
        return ((x_hat - x) ** 2).sum(dim=-1).mean(dim=1) + self.beta_kl * _kl_standard_normal(mu, logvar)


def _kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over dimensions, averaged over rows: [R] (nats)."""
    return (0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)).sum(dim=-1).mean(dim=1)


def fully_connected_prior(num_variables: int, exogenous: np.ndarray) -> np.ndarray:
    """Return the prior float32 [n, n] where each endogenous node sees every other variable."""
    prior = np.ones((num_variables, num_variables), dtype=np.float32) - np.eye(num_variables, dtype=np.float32)
    prior[:, exogenous] = 0.0
    return prior + np.diag(exogenous.astype(np.float32))


def build_model(settings: CausalGenSettings | CausalVariationalGenSettings | VAESettings, prior: np.ndarray,
                exogenous: np.ndarray, *, seeds: list[int], groups: list[int] | None = None) -> nn.Module:
    """Return a fresh model with one replica per entry of `seeds`, over prior [n, n] (or one per replica,
    [R, n, n]; causal models only) and exogenous mask [n].

    `groups` (causal models): one noise group per replica; replicas of one group (the same table
    under different candidate graphs) share their dropout and latent noise. None: each its own.
    The fully connected predictor ignores `prior` (it uses `fully_connected_prior`); the VAE
    ignores both (it is not structured).
    """
    if settings.kind == "vae":
        return RowVAE(exogenous, settings, seeds=seeds)
    if settings.kind == "causal_variational_gen":
        return CausalVariationalGen(prior, exogenous, settings, seeds=seeds, groups=groups)
    if settings.kind == "fully_connected":
        prior = fully_connected_prior(len(exogenous), exogenous)
    return CausalGen(prior, exogenous, settings.hidden, dropout=settings.dropout, seeds=seeds, groups=groups)
