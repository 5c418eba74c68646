"""The Sachs et al. (2005) protein-signalling data and its consensus graph, as shipped by the `cdt` package.

Files (read from the installed package's directory, without importing cdt and its heavy
dependencies): `cdt/data/resources/cyto_full_data.csv` (7,466 single-cell measurements of 11
phosphoproteins and phospholipids, observational and interventional conditions pooled) and
`cyto_full_target.csv` (the consensus network, 18 directed edges).

**The shipped consensus graph has a cycle**: plcg -> PIP2 -> PIP3 -> plcg. The hypothesis test
needs a DAG, so **[choice]** the edge PIP3 -> plcg is dropped (the 17-edge consensus of Sachs et
al.'s Fig. 2, which conf/graphs/sachs.yaml declares); `consensus_edges` returns all 18.
Concentrations are heavy-tailed and positive: the table is log-transformed.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from genlab.errors import ConfigError, DatasetMissingError

DATA_FILE, TARGET_FILE = "cyto_full_data.csv", "cyto_full_target.csv"
DROPPED_EDGE = ("PIP3", "plcg")  # breaks the consensus graph's only cycle (see the module docstring)


def cdt_resource(name: str) -> Path:
    """Return the path of `name` in the installed cdt package's data/resources (DatasetMissingError if cdt is missing)."""
    spec = importlib.util.find_spec("cdt")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetMissingError("the Sachs data ship with the cdt package: pip install cdt")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "resources" / name
    if not path.is_file():
        raise DatasetMissingError(f"cdt is installed but has no {path}")
    return path


def consensus_edges() -> list[tuple[str, str]]:
    """Return the consensus network's 18 (cause, effect) edges as cdt ships them (one cycle, see module)."""
    with cdt_resource(TARGET_FILE).open() as handle:
        rows = list(csv.reader(handle))
    return [(cause, effect) for cause, effect in rows[1:]]


def sachs_table(nodes: tuple[str, ...]) -> np.ndarray:
    """Return all 7,466 rows float64 [N, len(nodes)], log-concentrations, columns in `nodes` order.

    ConfigError (config key graph) naming the first node the file lacks.
    """
    with cdt_resource(DATA_FILE).open() as handle:
        rows = list(csv.reader(handle))
    header, values = rows[0], np.array(rows[1:], dtype=np.float64)
    missing = [node for node in nodes if node not in header]
    if missing:
        raise ConfigError(f"config key graph: the Sachs data have no column {missing[0]!r} "
                          f"(columns: {', '.join(header)}; use conf/graphs/sachs.yaml)")
    return np.log(np.clip(values[:, [header.index(node) for node in nodes]], 1e-3, None))
