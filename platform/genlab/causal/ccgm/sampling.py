"""Generation, interventions, counterfactuals and edge cuts on a trained CCGM (spec 6.5).

Values are in raw label units; they are normalised before entering the latents.
- `sample`: population-level generation. Exogenous nodes come from the aggregate posterior,
  endogenous noise from N(0, I); `interventions` {node: c} set z_node = c' 1_k and only the
  descendants of node (in the model's graph) are recomputed, in topological order; `cuts`
  [(parent, child)] remove an edge (the parent's slot in the child's mechanism becomes an
  independent draw of the parent's marginal). The same `seed` gives bit-identical values for
  every node that is not downstream of an intervention or cut.
- `counterfactual`: abduct eps from the posterior mean of each input, act (set the node),
  predict the descendants with the abducted eps, decode. Non-descendants keep their
  abducted latents exactly.

The same operations on the true SCM are genlab.causal.interventions.
"""

from __future__ import annotations

import torch

from genlab.causal.ccgm.model import CCGM


def _indices(model: CCGM, interventions: dict[str, float], cuts: list[tuple[str, str]]
             ) -> tuple[dict[int, float], dict[int, list[tuple[int, str]]]]:
    """Return (interventions by node index in normalised units, cuts by child index) for the causal layer."""
    nodes = model.graph.nodes
    normalised = {nodes.index(node): float((value - model.label_mean[nodes.index(node)])
                                           / model.label_std[nodes.index(node)]) for node, value in interventions.items()}
    by_child: dict[int, list[tuple[int, str]]] = {}
    for parent, child in cuts:
        by_child.setdefault(nodes.index(child), []).append((nodes.index(parent), "shuffle"))
    return normalised, by_child


@torch.no_grad()
def sample(model: CCGM, num_samples: int, *, seed: int, interventions: dict[str, float] | None = None,
           cuts: list[tuple[str, str]] | None = None) -> torch.Tensor:
    """Return generated data: rows [N, n] in raw label units (tabular) or images [N, 1, D, D] in (0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    eps = model.prior_noise(num_samples, generator)
    do, by_child = _indices(model, interventions or {}, cuts or [])
    z = model.causal.generate(eps, interventions=do, cuts=by_child, generator=generator)
    decoded = model.decode(z)
    return model.denormalise(decoded) if model.config.data == "tabular" else decoded


@torch.no_grad()
def counterfactual(model: CCGM, x: torch.Tensor, interventions: dict[str, float], *, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (counterfactual latents z [B, n, k], decoded data) for inputs x under `interventions`.

    Abduct eps from the posterior mean, act (set the intervened nodes), predict the
    descendants in topological order with the abducted eps, decode (raw units for tabular rows).
    """
    mu, _ = model.encode(x)
    do, _ = _indices(model, interventions, [])
    z = model.causal.generate(model.causal.abduct(mu), interventions=do, base=mu,
                              generator=torch.Generator().manual_seed(seed))
    decoded = model.decode(z)
    return z, model.denormalise(decoded) if model.config.data == "tabular" else decoded
