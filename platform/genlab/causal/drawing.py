"""Drawings of candidate graphs against the true graph, as PNG files for MLflow."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from genlab.causal.graph import CausalGraph  # noqa: E402

KEPT, EXTRA, MISSING = "#222222", "#c0392b", "#aaaaaa"  # edge colours: in both, only in candidate, only in truth
EXOGENOUS, ENDOGENOUS = "#f5cba7", "#aed6f1"  # node fill colours


def layout(truth: CausalGraph) -> dict[str, tuple[float, float]]:
    """Return node positions (x, y) in [-1, 1]: one column per topological generation of `truth`."""
    graph = truth.graph.copy()
    for depth, generation in enumerate(nx.topological_generations(graph)):
        for node in generation:
            graph.nodes[node]["depth"] = depth
    return nx.multipartite_layout(graph, subset_key="depth", align="vertical")


def draw_graph(candidate: CausalGraph, truth: CausalGraph, path: Path, *, title: str | None = None) -> Path:
    """Draw `candidate` in the layout of `truth`; extra edges red, missing edges grey dashed. Return the path."""
    positions = layout(truth)
    kept = [e for e in candidate.edges if truth.graph.has_edge(*e)]
    extra = [e for e in candidate.edges if not truth.graph.has_edge(*e)]
    missing = [e for e in truth.edges if not candidate.graph.has_edge(*e)]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    colours = [EXOGENOUS if node in candidate.exogenous else ENDOGENOUS for node in candidate.nodes]
    nx.draw_networkx_nodes(candidate.graph, positions, nodelist=list(candidate.nodes), node_color=colours,
                           node_size=900, edgecolors="#555555", ax=ax)
    nx.draw_networkx_labels(candidate.graph, positions, font_size=8, ax=ax)
    for edges, colour, style in ((kept, KEPT, "solid"), (extra, EXTRA, "solid"), (missing, MISSING, "dashed")):
        nx.draw_networkx_edges(truth.graph if colour == MISSING else candidate.graph, positions, edgelist=edges,
                               edge_color=colour, style=style, arrows=True, arrowsize=16, node_size=900, ax=ax)
    ax.set_title(f"{title or candidate.name}\nred: extra edge, grey dashed: missing edge", fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
