"""Candidate hypotheses: graphs a few edge edits away from a base graph, and their distances.

An edit is `add`, `remove` or `reverse` of one edge. Candidates are built from explicit
edits (listed in config) or generated: every acyclic single edit of the base graph, and
compositions of `h` edits whose structural Hamming distance to the base is exactly `h`.
Every candidate keeps the base graph's node order and exogenous set (spec section 5.2).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np
from pydantic import Field

from genlab.causal.graph import CausalGraph, GraphError
from genlab.config import StrictModel

EditKind = Literal["add", "remove", "reverse"]


class ListedCandidate(StrictModel):
    """A named hypothesis written as edits of the base graph."""

    name: str  # shown in the ranking and as the run name
    add: list[tuple[str, str]] = Field(default_factory=list)  # [parent, child] edges to add
    remove: list[tuple[str, str]] = Field(default_factory=list)  # edges of the base graph to drop
    reverse: list[tuple[str, str]] = Field(default_factory=list)  # edges of the base graph to flip


@dataclass(frozen=True)
class Edit:
    """One edge edit: `kind` applied to the edge parent -> child."""

    kind: EditKind
    parent: str
    child: str

    def __str__(self) -> str:
        return f"{self.kind}({self.parent}->{self.child})"


@dataclass(frozen=True)
class Distance:
    """How a hypothesis differs from the truth: SHD, missing (H-) and extra (H+) directed edges."""

    shd: int
    missing: int
    extra: int


def structural_hamming_distance(truth: CausalGraph, hypothesis: CausalGraph) -> Distance:
    """Return the SHD over unordered node pairs (missing, extra, reversed each count 1), H- and H+."""
    a, b = truth.adjacency(), hypothesis.adjacency()
    differs = np.triu((a != b) | (a.T != b.T), k=1)
    truth_edges, hyp_edges = set(truth.graph.edges), set(hypothesis.graph.edges)
    return Distance(shd=int(differs.sum()), missing=len(truth_edges - hyp_edges), extra=len(hyp_edges - truth_edges))


def apply_edits(base: CausalGraph, edits: list[Edit], name: str) -> CausalGraph:
    """Return `base` with `edits` applied in order; GraphError if an edit does not fit or makes a cycle."""
    graph = base.graph.copy()
    for edit in edits:
        edge = (edit.parent, edit.child)
        if edit.kind == "add":
            if graph.has_edge(*edge) or graph.has_edge(edit.child, edit.parent):
                raise GraphError(f"candidate {name}: cannot {edit}, the pair is already connected")
            graph.add_edge(*edge)
        elif not graph.has_edge(*edge):
            raise GraphError(f"candidate {name}: cannot {edit}, the graph has no edge {edit.parent} -> {edit.child}")
        else:
            graph.remove_edge(*edge)
            if edit.kind == "reverse":
                graph.add_edge(edit.child, edit.parent)
    return base.with_edges(list(graph.edges), name=name)


def listed_candidate(base: CausalGraph, listed: ListedCandidate) -> CausalGraph:
    """Return the graph of a config-listed candidate (GraphError naming it if it is invalid)."""
    edits = ([Edit("remove", *e) for e in listed.remove] + [Edit("reverse", *e) for e in listed.reverse]
             + [Edit("add", *e) for e in listed.add])
    for edit in edits:
        for node in (edit.parent, edit.child):
            if node not in base.nodes:
                raise GraphError(f"candidate {listed.name}: {edit} names unknown node {node!r}")
    return apply_edits(base, edits, listed.name)


def single_edits(graph: CausalGraph) -> list[Edit]:
    """Return every edit of `graph` that keeps it acyclic, in node order (removes, reverses, adds)."""
    edits = [Edit("remove", *edge) for edge in graph.edges]
    for parent, child in graph.edges:
        flipped = graph.graph.copy()
        flipped.remove_edge(parent, child)
        if not nx.has_path(flipped, parent, child):
            edits.append(Edit("reverse", parent, child))
    for parent, child in itertools.permutations(graph.nodes, 2):
        connected = graph.graph.has_edge(parent, child) or graph.graph.has_edge(child, parent)
        if not connected and not nx.has_path(graph.graph, child, parent):
            edits.append(Edit("add", parent, child))
    return edits


def edit_name(edits: list[Edit]) -> str:
    """Return the display name of a composition of edits, e.g. `remove(a->b)+add(c->d)`."""
    return "+".join(str(edit) for edit in edits)


def candidates_at_distance(truth: CausalGraph, distance: int, count: int, rng: np.random.Generator,
                           *, exclude: set[tuple[tuple[str, str], ...]] = frozenset()) -> list[CausalGraph]:
    """Return up to `count` distinct acyclic graphs at SHD exactly `distance` from `truth`.

    Each is `distance` random single edits composed one at a time, every step moving one
    further from the truth; graphs with more roots than the truth are skipped (spec section 1).
    `exclude` holds sorted edge tuples of graphs already chosen elsewhere.
    """
    roots = sum(1 for node in truth.nodes if truth.graph.in_degree(node) == 0)
    chosen: dict[tuple[tuple[str, str], ...], CausalGraph] = {}
    for _ in range(50 * count):
        if len(chosen) == count:
            break
        graph, edits = truth, []
        for step in range(1, distance + 1):
            options = [e for e in single_edits(graph)
                       if structural_hamming_distance(truth, apply_edits(graph, [e], "probe")).shd == step]
            if not options:
                break
            edits.append(options[rng.integers(len(options))])
            graph = apply_edits(graph, edits[-1:], edit_name(edits))
        key = tuple(sorted(graph.graph.edges))
        graph_roots = sum(1 for node in graph.nodes if graph.graph.in_degree(node) == 0)
        if len(edits) == distance and graph_roots <= roots and key not in chosen and key not in exclude:
            chosen[key] = graph
    return list(chosen.values())
