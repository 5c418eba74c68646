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
`power_extra_only_<split>`, `candidates_by_shd`, `seconds`. With `--out DIR` each graph's result is
appended to DIR/graphs.jsonl as it finishes (run again with the same DIR and settings to finish a
study cut short), and the study is recorded: an MLflow run (rates, drawings of the true graphs and
of the candidates that beat them) and DIR/summary.json, DIR/power.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genlab.causal.gen.power import PowerSettings, run_power_study
from genlab.causal.gen.power_report import record_power_study
from genlab.fileio import write_json_atomic, write_text_atomic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = PowerSettings()
    parser.add_argument("--graphs", type=int, default=defaults.graphs)
    parser.add_argument("--seeds", type=int, default=defaults.seeds)
    parser.add_argument("--splits", type=int, default=defaults.splits, help="split columns per graph (default: all)")
    parser.add_argument("--seed-draws", choices=["scm_and_table", "table"], default=defaults.seed_draws,
                        help="per seed: a new SCM and table (the papers' protocol) or one SCM per graph, new rows")
    parser.add_argument("--processes", type=int, default=defaults.processes)
    parser.add_argument("--indices", type=int, nargs="+", default=None, help="study only these graphs")
    parser.add_argument("--out", type=Path, default=None, help="folder: per-graph log, report, MLflow run")
    args = parser.parse_args()
    settings = PowerSettings(graphs=args.graphs, seeds=args.seeds, splits=args.splits, seed_draws=args.seed_draws,
                             processes=args.processes)
    log, done = None, []
    if args.out:
        log, done = args.out / "graphs.jsonl", resume(args.out, settings)
    result = run_power_study(settings, log, args.indices, done)
    if args.out:
        record_power_study(settings, result, args.out)
    print(json.dumps({key: value for key, value in result.items() if key != "per_graph"}))


def resume(out: Path, settings: PowerSettings) -> list[dict]:
    """Return the graphs already in `out`/graphs.jsonl (after checking `out`/settings.json matches `settings`,
    the study's settings without `processes`); start the folder if it is new. Exits on a mismatch."""
    wanted = settings.model_dump(mode="json", exclude={"processes"})
    saved = out / "settings.json"
    if not saved.exists():
        write_json_atomic(saved, wanted)
        return []
    if json.loads(saved.read_text()) != wanted:
        raise SystemExit(f"error: {out} holds a study with other settings ({saved}); choose another --out")
    log = out / "graphs.jsonl"
    lines = [line for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    graphs = []
    for number, line in enumerate(lines, start=1):
        try:
            graphs.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise SystemExit(f"error: {log} line {number} is not JSON; choose another --out")
            print(f"[genlab] {log}: dropping a last line cut short; that graph is studied again", flush=True)
            write_text_atomic(log, "".join(json.dumps(g) + "\n" for g in graphs))
    return graphs


if __name__ == "__main__":
    main()
