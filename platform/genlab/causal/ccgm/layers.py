"""The causal layers of CCGM (spec 6.2) and of its CausalVAE-style baseline (spec 2.3).

Both map exogenous noise eps [B, n, k] (n nodes, k latent dims per node) to concept latents
z [B, n, k] and back, and hold one mechanism per node: a `BatchedMLP` over the node's gated
parent vector. **[choice]** A mechanism reads the concept means zbar = z.mean(-1) [B, n] and
its scalar output is broadcast over the node's k dims, so the same network g_j serves the
label space (h_j of the spec: the conditional prior aligns z_j with the label u'_j) and the
latent space; for tabular data k = 1 and zbar = z.

- `CCGMCausalLayer`: edge weights W = fixed_one + trainable * sigmoid(gate_logits), masked by
  the prior so the allowed graph is a DAG by construction. Nodes are computed in topological
  order: z_j = eps_j (exogenous), z_j = g_j(W[:, j] * zbar) 1_k + s_j eps_j (endogenous),
  with a learned residual scale s_j. Interventions, counterfactual abduction and edge cuts
  act here (spec 6.5).
- `CausalVAELayer`: a free adjacency A over all ordered pairs (NOTEARS h(A) keeps it
  acyclic), the linear layer z = (I - A^T)^-1 eps per latent dim, then one mask-layer pass
  z_j = g_j(A[:, j] * zbar_lin) 1_k + eps_j. do() overwrites a node before the mask layer
  (its children recompute) and after it; there is no edge cut (CausalVAE has none).
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import torch
from torch import nn

from genlab.causal.graph import CausalGraph
from genlab.models.causal import BatchedMLP

GATE_THRESHOLD = 0.5  # a trainable edge is in the learned graph iff its gate exceeds this (spec 6.4)
CLOSED_GATE_LOGIT = -30.0  # a pruned gate: sigmoid = 1e-13, so the edge carries nothing
LOG_2PI = math.log(2 * math.pi)


def edge_masks(graph: CausalGraph, edge_prior: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (fixed_one, trainable) float32 [n, n] masks over edges i -> j; everything else is fixed at 0.

    `known`: the graph's edges are pinned to 1, nothing is learned. `exogenous_endogenous`
    (the spec's default for a prior that only says which nodes are exogenous): every
    exogenous -> endogenous pair is a trainable gate and the graph's edges between
    endogenous nodes are pinned to 1. Both allowed graphs are acyclic.
    """
    adjacency = graph.adjacency()
    if edge_prior == "known":
        return adjacency, np.zeros_like(adjacency)
    exogenous = graph.exogenous_mask()
    trainable = np.outer(exogenous, ~exogenous).astype(np.float32)
    return adjacency * (1.0 - trainable) * (~exogenous)[:, None], trainable


def gaussian_log_density(value: torch.Tensor, mean: torch.Tensor, log_sd: torch.Tensor) -> torch.Tensor:
    """Return log N(value; mean, exp(log_sd)^2) elementwise (nats)."""
    return -0.5 * ((value - mean) * torch.exp(-log_sd)) ** 2 - log_sd - 0.5 * LOG_2PI


class CCGMCausalLayer(nn.Module):
    """Partially trainable, DAG-masked causal layer: gated parent vectors -> per-node mechanisms."""

    def __init__(self, graph: CausalGraph, *, edge_prior: str, hidden: list[int], dropout: float,
                 residual_scale: float, seed: int) -> None:
        super().__init__()
        n = len(graph.nodes)
        fixed_one, trainable = edge_masks(graph, edge_prior)
        self.nodes = graph.nodes
        self.exogenous = graph.exogenous_mask()
        self.endogenous = [j for j in range(n) if not self.exogenous[j]]
        allowed = nx.DiGraph()
        allowed.add_nodes_from(range(n))
        allowed.add_edges_from(zip(*np.nonzero(fixed_one + trainable)))
        self.order = list(nx.lexicographical_topological_sort(allowed))
        self.register_buffer("fixed_one", torch.as_tensor(fixed_one))
        self.register_buffer("trainable", torch.as_tensor(trainable))
        self.gate_logits = nn.Parameter(torch.full((n, n), 2.0))  # sigmoid(2) = 0.88: candidate edges start open
        self.log_scale = nn.Parameter(torch.full((n,), math.log(residual_scale)))
        masks = (fixed_one + trainable)[:, self.endogenous].T  # [K, n]: the inputs each mechanism may see
        self.mechanisms = BatchedMLP(masks, hidden, 1, dropout=dropout, seeds=[(seed, 7, j) for j in self.endogenous])

    def weights(self) -> torch.Tensor:
        """Return W float [n, n] in [0, 1]: pinned edges 1, trainable ones their gate, the rest 0."""
        return self.fixed_one + self.trainable * torch.sigmoid(self.gate_logits)

    def gates(self) -> torch.Tensor:
        """Return the trainable gates float [n, n] in [0, 1] (0 where an entry is not trainable)."""
        return self.trainable * torch.sigmoid(self.gate_logits)

    def prune_gates(self) -> None:
        """Close every trainable gate at or below GATE_THRESHOLD (end of the causal phase)."""
        with torch.no_grad():
            closed = (self.trainable > 0) & (torch.sigmoid(self.gate_logits) <= GATE_THRESHOLD)
            self.gate_logits[closed] = CLOSED_GATE_LOGIT

    def learned_edges(self) -> list[tuple[str, str]]:
        """Return the edges of the layer's graph: pinned ones and open gates, as (parent, child) names."""
        open_edges = (self.fixed_one > 0) | ((self.trainable > 0) & (torch.sigmoid(self.gate_logits) > GATE_THRESHOLD))
        return [(self.nodes[i], self.nodes[j]) for i, j in torch.nonzero(open_edges).tolist()]

    def graph(self) -> nx.DiGraph:
        """Return the learned graph over node indices (for descendants of interventions)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(self.nodes)))
        graph.add_edges_from((self.nodes.index(a), self.nodes.index(b)) for a, b in self.learned_edges())
        return graph

    def mechanism_means(self, zbar: torch.Tensor, cuts: dict[int, list[tuple[int, torch.Tensor]]] | None = None
                        ) -> torch.Tensor:
        """Return g_j(W[:, j] * zbar) for every endogenous j, float [B, K] (K = len(endogenous)).

        `cuts` maps a child index to (parent index, replacement values [B]) pairs: the parent's
        slot in that child's input is replaced (a shuffled draw of its marginal, or zeros).
        """
        inputs = zbar.unsqueeze(0).repeat(len(self.endogenous), 1, 1)  # [K, B, n]
        for child, replacements in (cuts or {}).items():
            for parent, values in replacements:
                inputs[self.endogenous.index(child), :, parent] = values
        gated = inputs * self.weights()[:, self.endogenous].T.unsqueeze(1)
        return self.mechanisms(gated).squeeze(-1).T

    def generate(self, eps: torch.Tensor, *, interventions: dict[int, float] | None = None,
                 cuts: dict[int, list[tuple[int, str]]] | None = None, base: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Return z [B, n, k] from noise eps [B, n, k], nodes computed in topological order.

        `interventions` {node: c'} sets z_node = c' 1_k (do, normalised units). `cuts` {child:
        [(parent, "shuffle" | "zero")]} removes parent -> child: the parent's slot in the child's
        mechanism input is a batch permutation of the parent (an independent draw of its
        marginal, from `generator`) or zeros. With `base` [B, n, k] (counterfactual mode) every
        node that is neither intervened, cut nor downstream of them keeps its `base` value
        exactly; the others are recomputed from eps.
        """
        interventions, cuts = interventions or {}, cuts or {}
        affected = set(interventions) | set(cuts)
        for node in list(affected):
            affected |= nx.descendants(self.graph(), node)
        z = torch.zeros_like(eps)
        scale = torch.exp(self.log_scale)
        for j in self.order:
            if j in interventions:
                z[:, j] = interventions[j]
            elif base is not None and j not in affected:
                z[:, j] = base[:, j]
            elif self.exogenous[j]:
                z[:, j] = eps[:, j]
            else:
                zbar = z.mean(dim=-1)
                replaced = {j: [(parent, zbar[torch.randperm(len(zbar), generator=generator), parent]
                                 if mode == "shuffle" else torch.zeros(len(zbar))) for parent, mode in cuts.get(j, [])]}
                mean = self.mechanism_means(zbar, replaced)[:, self.endogenous.index(j)]
                z[:, j] = mean.unsqueeze(-1) + scale[j] * eps[:, j]
        return z

    def abduct(self, z: torch.Tensor) -> torch.Tensor:
        """Return eps [B, n, k] such that generate(eps) == z: eps_j = z_j (exogenous), (z_j - g_j) / s_j."""
        eps = z.clone()
        means = self.mechanism_means(z.mean(dim=-1))
        eps[:, self.endogenous] = (z[:, self.endogenous] - means.unsqueeze(-1)) / torch.exp(
            self.log_scale[self.endogenous]).view(1, -1, 1)
        return eps

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Return log p(z) per row [B] (nats): exogenous N(0, I), endogenous N(g_j 1_k, s_j^2 I)."""
        mean = torch.zeros_like(z)
        log_sd = torch.zeros(z.shape[1], device=z.device)
        mean[:, self.endogenous] = self.mechanism_means(z.mean(dim=-1)).unsqueeze(-1)
        log_sd[self.endogenous] = self.log_scale[self.endogenous]
        return gaussian_log_density(z, mean, log_sd.view(1, -1, 1)).sum(dim=(1, 2))

    def mechanism_error(self, values: torch.Tensor) -> torch.Tensor:
        """Return sum over endogenous j of (v_j - g_j(W[:, j] * v))^2 per row [B], for values [B, n]."""
        return ((values[:, self.endogenous] - self.mechanism_means(values)) ** 2).sum(dim=1)

    def penalty(self) -> torch.Tensor:
        """Return the L1 norm of the trainable gates (a scalar >= 0)."""
        return self.gates().sum()

    @torch.no_grad()
    def set_residual_scales(self, labels: torch.Tensor) -> None:
        """Set each s_j to the sd of node j's label residual u'_j - g_j(u'), labels [N, n] (end of causal phase)."""
        residual = labels[:, self.endogenous] - self.mechanism_means(labels)
        self.log_scale[self.endogenous] = torch.log(residual.std(dim=0).clamp_min(1e-3))

    def causal_parameters(self) -> list[nn.Parameter]:
        """Return the parameters of the causal phase: gates and mechanisms."""
        return [self.gate_logits, *self.mechanisms.parameters()]

    def generative_parameters(self) -> list[nn.Parameter]:
        """Return the layer parameters trained (at a reduced rate) in the generative phase: mechanisms, scales."""
        return [*self.mechanisms.parameters(), self.log_scale]


class CausalVAELayer(nn.Module):
    """CausalVAE-style layer: free adjacency A, linear SCM (I - A^T)^-1 eps, one mask-layer pass."""

    def __init__(self, graph: CausalGraph, *, hidden: list[int], dropout: float, seed: int) -> None:
        super().__init__()
        n = len(graph.nodes)
        self.nodes = graph.nodes
        self.exogenous = graph.exogenous_mask()
        self.endogenous = list(range(n))  # every node has a mask-layer mechanism (CausalVAE has no exogenous set)
        self.register_buffer("off_diagonal", 1.0 - torch.eye(n))
        self.adjacency = nn.Parameter(torch.triu(torch.full((n, n), 0.5), diagonal=1))  # CV's init: every i < j edge
        masks = np.ones((n, n), dtype=np.float32) - np.eye(n, dtype=np.float32)
        self.mechanisms = BatchedMLP(masks, hidden, 1, dropout=dropout, seeds=[(seed, 8, j) for j in range(n)])

    def weights(self) -> torch.Tensor:
        """Return A float [n, n] (zero diagonal)."""
        return self.adjacency * self.off_diagonal

    def gates(self) -> torch.Tensor:
        """Return |A| [n, n]: the baseline's edge strengths."""
        return self.weights().abs()

    def learned_edges(self) -> list[tuple[str, str]]:
        """Return the edges with |A_ij| > GATE_THRESHOLD, as (parent, child) names."""
        return [(self.nodes[i], self.nodes[j]) for i, j in torch.nonzero(self.gates() > GATE_THRESHOLD).tolist()]

    def mechanism_means(self, zbar: torch.Tensor) -> torch.Tensor:
        """Return g_j(A[:, j] * zbar) for every node j, float [B, n]."""
        gated = zbar.unsqueeze(0) * self.weights().T.unsqueeze(1)  # [n, B, n]
        return self.mechanisms(gated).squeeze(-1).T

    def linear(self, eps: torch.Tensor) -> torch.Tensor:
        """Return (I - A^T)^-1 eps per latent dim: [B, n, k] -> [B, n, k]."""
        n = eps.shape[1]
        inverse = torch.linalg.inv(torch.eye(n, device=eps.device) - self.weights().T)
        return torch.einsum("ij,bjk->bik", inverse, eps)

    def generate(self, eps: torch.Tensor, *, interventions: dict[int, float] | None = None,
                 cuts: dict[int, list[tuple[int, str]]] | None = None, base: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Return z [B, n, k]: linear layer, do() overwrite, mask layer, do() overwrite (CV inference code).

        `cuts` is refused (ValueError): CausalVAE has no edge intervention. `base` and
        `generator` are accepted for interface parity and unused (abduction is inexact here).
        """
        if cuts:
            raise ValueError("the CausalVAE baseline has no edge cut; de-bias it with do() on a node")
        linear = self.linear(eps)
        for node, value in (interventions or {}).items():
            linear[:, node] = value
        z = self.mechanism_means(linear.mean(dim=-1)).unsqueeze(-1) + eps
        for node, value in (interventions or {}).items():
            z[:, node] = value
        return z

    def abduct(self, z: torch.Tensor) -> torch.Tensor:
        """Return eps [B, n, k] ~ z - g(A * zbar) (the mask layer's residual; approximate for this baseline)."""
        return z - self.mechanism_means(z.mean(dim=-1)).unsqueeze(-1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """Return log N(eps; 0, I) per row [B] with eps = (I - A^T) z: CausalVAE's KL is on eps, not z (the map's
        Jacobian determinant is 1 for an acyclic A, which h(A) enforces)."""
        n = z.shape[1]
        eps = torch.einsum("ij,bjk->bik", torch.eye(n, device=z.device) - self.weights().T, z)
        return gaussian_log_density(eps, torch.zeros_like(eps), torch.zeros(())).sum(dim=(1, 2))

    def mechanism_error(self, values: torch.Tensor) -> torch.Tensor:
        """Return sum over every node of (v_j - g_j(A[:, j] * v))^2 per row [B] (CausalVAE's mask loss)."""
        return ((values - self.mechanism_means(values)) ** 2).sum(dim=1)

    def penalty(self) -> torch.Tensor:
        """Return CausalVAE's acyclicity penalty 3 h(A) + 0.5 h(A)^2, h(A) = tr[(I + A*A/n)^n] - n."""
        n = self.adjacency.shape[0]
        a = self.weights()
        h = torch.trace(torch.linalg.matrix_power(torch.eye(n) + a * a / n, n)) - n
        return 3.0 * h + 0.5 * h * h

    def causal_parameters(self) -> list[nn.Parameter]:
        """Return the adjacency and the mechanisms (trained jointly with everything else)."""
        return [self.adjacency, *self.mechanisms.parameters()]

    def generative_parameters(self) -> list[nn.Parameter]:
        """Return no extra parameters: the baseline is trained in one joint phase."""
        return []
