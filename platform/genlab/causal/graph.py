"""Causal priors: a DAG declared in YAML, validated and held as a `networkx.DiGraph`.

A graph file lists its nodes in order (that order is the column order of every matrix and
data table), its edges as `[parent, child]` pairs, optionally the exogenous set and
functional-form hints for the SCM generator:

    name: scm5
    nodes: [x0, x1, x2, x3, x4]
    edges: [[x0, x2], [x1, x2], [x2, x3], [x1, x4], [x3, x4]]
    exogenous: [x0, x1]          # optional; default = nodes without parents
    mechanisms: {x3: mim}        # optional; linear | mlp | mim (see genlab.causal.scm)

A cycle, a self-loop, an unknown or duplicated node, a duplicated edge or an exogenous
node with parents is refused with a `GraphError` (a `ConfigError`: one line, exit 2).
Matrices follow the spec (section 1): `A[i, j] = 1` iff `nodes[i] -> nodes[j]`, so column j is
the parent mask of node j; the structural prior is `S = A + diag(1[node is exogenous])`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import networkx as nx
import numpy as np
from pydantic import Field

from genlab.config import StrictModel, load_yaml, validate
from genlab.errors import ConfigError

Mechanism = Literal["linear", "mlp", "mim"]


class GraphError(ConfigError):
    """A causal graph is malformed: cycle, self-loop, unknown node, duplicate (exit 2)."""


class GraphSpec(StrictModel):
    """A causal graph as declared in YAML (validated into a `CausalGraph` by `build_graph`)."""

    name: str = "graph"  # shown in run names and drawings
    nodes: list[str] = Field(min_length=1)  # ordered node names: the column order everywhere
    edges: list[tuple[str, str]] = Field(default_factory=list)  # [parent, child] pairs
    exogenous: list[str] | None = None  # exogenous nodes; None = the nodes without parents
    mechanisms: dict[str, Mechanism] = Field(default_factory=dict)  # per-node functional-form hints


@dataclass(frozen=True)
class CausalGraph:
    """A validated DAG over an ordered node list, with its exogenous set and mechanism hints."""

    name: str
    nodes: tuple[str, ...]
    graph: nx.DiGraph = field(compare=False)
    exogenous: tuple[str, ...]
    mechanisms: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def edges(self) -> list[tuple[str, str]]:
        """Return the edges as (parent, child) pairs, sorted by node order."""
        index = {node: i for i, node in enumerate(self.nodes)}
        return sorted(self.graph.edges, key=lambda edge: (index[edge[0]], index[edge[1]]))

    @property
    def num_edges(self) -> int:
        """Return the number of directed edges."""
        return self.graph.number_of_edges()

    def topological_order(self) -> list[str]:
        """Return the nodes in a topological order (ties broken by node order)."""
        index = {node: i for i, node in enumerate(self.nodes)}
        return list(nx.lexicographical_topological_sort(self.graph, key=index.__getitem__))

    def parents(self, node: str) -> list[str]:
        """Return the parents of `node`, in node order."""
        return [p for p in self.nodes if self.graph.has_edge(p, node)]

    def adjacency(self) -> np.ndarray:
        """Return A as float32 [n, n] with A[i, j] = 1 iff nodes[i] -> nodes[j] (0 elsewhere)."""
        return nx.to_numpy_array(self.graph, nodelist=list(self.nodes), dtype=np.float32, weight=None)

    def exogenous_mask(self) -> np.ndarray:
        """Return a bool [n] vector: True where the node is exogenous."""
        return np.array([node in self.exogenous for node in self.nodes])

    def structural_prior(self) -> np.ndarray:
        """Return S = A + diag(1[exogenous]) as float32 [n, n]; column j is what node j's net sees."""
        return self.adjacency() + np.diag(self.exogenous_mask().astype(np.float32))

    def with_edges(self, edges: list[tuple[str, str]], name: str) -> "CausalGraph":
        """Return a graph over the same nodes and exogenous set with `edges`; refuse cycles."""
        return build_graph(GraphSpec(name=name, nodes=list(self.nodes), edges=edges, mechanisms=self.mechanisms),
                           exogenous=self.exogenous, source=f"candidate {name}")


def build_graph(spec: GraphSpec, *, exogenous: tuple[str, ...] | None = None, source: str = "graph") -> CausalGraph:
    """Return the validated `CausalGraph` of `spec`; raise `GraphError` naming the first problem.

    `exogenous` overrides the spec's set (candidates share the expert's exogenous set, and
    edges into those nodes are then allowed: the nodes stay pass-through). `source` names the
    graph in messages (a file path).
    """
    nodes = list(spec.nodes)
    duplicates = sorted({node for node in nodes if nodes.count(node) > 1})
    if duplicates:
        raise GraphError(f"{source}: node {duplicates[0]!r} is listed more than once")
    known = set(nodes)
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    for parent, child in spec.edges:
        for node in (parent, child):
            if node not in known:
                raise GraphError(f"{source}: edge {parent} -> {child} names unknown node {node!r} "
                                 f"(nodes: {', '.join(nodes)})")
        if parent == child:
            raise GraphError(f"{source}: edge {parent} -> {child} is a self-loop")
        if graph.has_edge(parent, child):
            raise GraphError(f"{source}: edge {parent} -> {child} is listed more than once")
        graph.add_edge(parent, child)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [edge[0] for edge in nx.find_cycle(graph)]
        raise GraphError(f"{source}: the graph has a cycle {' -> '.join(cycle + cycle[:1])}")
    for node in spec.mechanisms:
        if node not in known:
            raise GraphError(f"{source}: mechanisms names unknown node {node!r} (nodes: {', '.join(nodes)})")
    if exogenous is None:
        declared = spec.exogenous
        if declared is None:
            declared = [node for node in nodes if graph.in_degree(node) == 0]
        for node in declared:
            if node not in known:
                raise GraphError(f"{source}: exogenous names unknown node {node!r} (nodes: {', '.join(nodes)})")
            if graph.in_degree(node):
                raise GraphError(f"{source}: exogenous node {node!r} has parents "
                                 f"{', '.join(sorted(graph.predecessors(node)))}")
        exogenous = tuple(node for node in nodes if node in set(declared))
    return CausalGraph(name=spec.name, nodes=tuple(nodes), graph=graph, exogenous=tuple(exogenous),
                       mechanisms=dict(spec.mechanisms))


def load_graph(path: str | Path) -> CausalGraph:
    """Return the `CausalGraph` declared in the YAML file at `path` (GraphError/ConfigError if bad)."""
    data = load_yaml(path)
    try:
        spec = validate(GraphSpec, data)
    except ConfigError as exc:
        raise GraphError(f"graph file {path}: {exc}") from None
    return build_graph(spec, source=f"graph file {path}")


def resolve_graph(value: str | GraphSpec) -> CausalGraph:
    """Return the graph a config field names: a YAML path (relative to the working dir) or an inline spec."""
    if isinstance(value, GraphSpec):
        return build_graph(value, source=f"graph {value.name}")
    return load_graph(value)
