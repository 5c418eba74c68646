"""Random true DAGs for the power study (spec section 4): Erdos-Renyi skeletons oriented by a random order."""

from __future__ import annotations

import itertools

import numpy as np

from genlab.causal.graph import CausalGraph, GraphSpec, Mechanism, build_graph


def random_dag(num_nodes: int, num_edges: int, mechanism: Mechanism, rng: np.random.Generator, name: str
               ) -> CausalGraph:
    """Return a DAG over x0..x{n-1} with `num_edges` edges drawn uniformly among the node pairs.

    Each pair is oriented along a random permutation (so the column order is not a topological
    order); every node gets the mechanism hint `mechanism`. The exogenous set is the roots.
    """
    nodes = [f"x{i}" for i in range(num_nodes)]
    order = rng.permutation(num_nodes)
    position = {int(node): rank for rank, node in enumerate(order)}
    pairs = list(itertools.combinations(range(num_nodes), 2))
    chosen = rng.choice(len(pairs), size=min(num_edges, len(pairs)), replace=False)
    edges = [(nodes[a], nodes[b]) if position[a] < position[b] else (nodes[b], nodes[a])
             for a, b in (pairs[k] for k in sorted(chosen))]
    return build_graph(GraphSpec(name=name, nodes=nodes, edges=edges, mechanisms={node: mechanism for node in nodes}),
                       source=f"random graph {name}")
