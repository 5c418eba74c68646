"""Power of the structural hypothesis test: how often the true graph ranks first, deliberate vs random split.

Runs genlab.causal.gen.power (the papers' protocol): `--graphs` random true DAGs of 5-10 nodes
(linear, mlp and mim mechanisms in turn), `--seeds` SCM draws and tables per graph (N = 250),
the truth against every single-edge removal and reversal, some additions and a few graphs two and
three edits away; a small Causal Gen per candidate x seed x split (every column, or `--splits`
random ones), trained in one batch per graph with common random numbers, graphs in parallel
processes. The deliberate split holds out the top quarter of a column, the random split a random
quarter of the rows.

    python bench/causal_power.py                                # 21 graphs, 20 seeds, every column: ~20 min, 2 cores
    python bench/causal_power.py --graphs 3 --seeds 6 --splits 2 # a quick look (~15 s)

Last line: one JSON object with `graphs`, `true_graph_first_rate_deliberate`,
`true_graph_first_rate_random` (and `..._se_rule`, by family), `power_by_shd_<split>`
(share of candidates at each SHD that the paired test rejects), `power_missing_or_reversed_<split>`,
`power_extra_only_<split>`, `candidates_by_shd`, `seconds`. With `--out FILE` the per-graph
results are written there as JSON too, and appended to FILE.jsonl as each graph finishes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genlab.causal.gen.power import PowerSettings, run_power_study
from genlab.fileio import write_json_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = PowerSettings()
    parser.add_argument("--graphs", type=int, default=defaults.graphs)
    parser.add_argument("--seeds", type=int, default=defaults.seeds)
    parser.add_argument("--splits", type=int, default=defaults.splits, help="split columns per graph (default: all)")
    parser.add_argument("--processes", type=int, default=defaults.processes)
    parser.add_argument("--indices", type=int, nargs="+", default=None, help="study only these graphs")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the full result here, and each graph's result to OUT.jsonl as it finishes")
    args = parser.parse_args()
    log = args.out.with_suffix(".jsonl") if args.out else None
    result = run_power_study(PowerSettings(graphs=args.graphs, seeds=args.seeds, splits=args.splits,
                                            processes=args.processes), log,
                             args.indices)
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps({key: value for key, value in result.items() if key != "per_graph"}))


if __name__ == "__main__":
    main()
