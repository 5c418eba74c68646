"""Interventions and edge cuts on the true SCM (spec 6.5), the ground truth a model's do() is judged by.

On a `StructuralCausalModel` of genlab.causal.scm: `do_scm` replaces a node's mechanism by a
constant and `cut_scm` feeds a mechanism a shuffled copy of one parent, so the SCM's own
ancestral sampler draws the interventional / edge-cut distributions. (The same operations on a
trained CCGM are genlab.causal.ccgm.sampling.)
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from genlab.causal.scm import NodeMechanism, StructuralCausalModel


@dataclass(frozen=True)
class FixedValueMechanism(NodeMechanism):
    """do(node = value): the node's structural equation replaced by a constant (noise scale 0)."""

    value: float = 0.0

    def mean(self, data: np.ndarray) -> np.ndarray:
        """Return `value` for every row, float64 [N]."""
        return np.full(len(data), self.value)


@dataclass(frozen=True)
class CutParentMechanism(NodeMechanism):
    """A node's equation fed a shuffled copy of some parents: the edges from them carry no dependence."""

    cut: tuple[int, ...] = ()
    seed: int = 0

    def mean(self, data: np.ndarray) -> np.ndarray:
        """Return f_j with the `cut` parent columns permuted across rows, float64 [N]."""
        shuffled = data.copy()
        rng = np.random.default_rng(self.seed)
        for column in self.cut:
            shuffled[:, column] = rng.permutation(shuffled[:, column])
        return super().mean(shuffled)


def do_scm(scm: StructuralCausalModel, interventions: dict[str, float]) -> StructuralCausalModel:
    """Return the SCM under do(node = value) for each entry of `interventions` (raw units)."""
    mechanisms = list(scm.mechanisms)
    for node, value in interventions.items():
        mechanisms[scm.graph.nodes.index(node)] = FixedValueMechanism(
            parents=(), form="fixed", weights=(), centre=np.zeros(0), spread=np.ones(0), noise_scale=0.0, value=value)
    return replace(scm, mechanisms=tuple(mechanisms))


def cut_scm(scm: StructuralCausalModel, cuts: list[tuple[str, str]], seed: int) -> StructuralCausalModel:
    """Return the SCM with each (parent, child) edge cut by feeding the child an independent draw of the parent."""
    mechanisms = list(scm.mechanisms)
    nodes = scm.graph.nodes
    for parent, child in cuts:
        base = mechanisms[nodes.index(child)]
        own = {f.name: getattr(base, f.name) for f in fields(NodeMechanism)}
        already = base.cut if isinstance(base, CutParentMechanism) else ()
        mechanisms[nodes.index(child)] = CutParentMechanism(**own, cut=(*already, nodes.index(parent)), seed=seed)
    return replace(scm, mechanisms=tuple(mechanisms))
