"""The tables a causal job trains on: one per seed, drawn from an SCM or from the pendulum labels."""

from __future__ import annotations

import hashlib

import numpy as np

from genlab.causal.gen.config import DataSettings
from genlab.causal.graph import CausalGraph
from genlab.causal.pendulum import COLUMNS, pendulum_table
from genlab.causal.sachs import sachs_table
from genlab.causal.scm import scm_dataset
from genlab.errors import ConfigError


def make_tables(data: DataSettings, graph: CausalGraph, seeds: list[int]) -> dict[int, np.ndarray]:
    """Return {seed: rows float64 [num_samples, n]} with columns in `graph.nodes` order.

    Pendulum tables need a graph over exactly the pendulum's
    columns (conf/graphs/pendulum.yaml); anything else is a ConfigError. Sachs tables are
    `num_samples` rows drawn without replacement (by seed) from the 7,466 log-concentrations.
    """
    if data.kind == "sachs":
        rows = sachs_table(graph.nodes)
        if data.num_samples > len(rows):
            raise ConfigError(f"config key data.num_samples: the Sachs data have {len(rows)} rows, "
                              f"asked for {data.num_samples}")
        return {seed: rows[np.random.default_rng([seed, 3]).choice(len(rows), data.num_samples, replace=False)]
                for seed in seeds}
    if data.kind == "pendulum":
        if graph.nodes != COLUMNS:
            raise ConfigError(f"config key graph: pendulum data needs the nodes {list(COLUMNS)} in this order, "
                              f"got {list(graph.nodes)} (use conf/graphs/pendulum.yaml)")
        return {seed: pendulum_table(data.pendulum, data.num_samples, seed) for seed in seeds}
    return {seed: scm_dataset(graph, data.scm, data.num_samples, seed) for seed in seeds}


def tables_hash(tables: dict[int, np.ndarray]) -> str:
    """Return the sha256 hex digest of the seeds and the bytes of their tables."""
    digest = hashlib.sha256()
    for seed, table in tables.items():
        digest.update(str((seed, table.shape)).encode())
        digest.update(np.ascontiguousarray(table).tobytes())
    return digest.hexdigest()
