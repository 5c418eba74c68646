"""Causal structural hypothesis test: rank candidate DAGs by out-of-distribution error (Causal Gen).

Each candidate graph (the true graph, every acyclic one-edit neighbour, a few graphs two
edits away, and any listed in the config) is one Ray Tune trial that trains a Causal Gen
(or Causal Variational Gen) constrained by it on every (seed, OOD split) table. Candidates
are ranked by mean OOD error over seeds; within one standard error, fewer edges win.

Local (embedded Ray, MLflow at sqlite:///mlflow.db in the working directory):
    python jobs/causal_hypothesis.py                       # conf/causal_hypothesis.yaml, about 2-3 min
    python jobs/causal_hypothesis.py --out out/hypothesis seeds=[0,1,2,3,4,5,6,7,8,9]
    python jobs/causal_hypothesis.py --config conf/causal_hypothesis_pendulum.yaml
    python jobs/causal_hypothesis.py "model={kind: causal_variational_gen}" data.scm.snr_db=2 train.lr=0.01
On a Ray cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/causal_hypothesis.py
Then look at the runs (experiment causal-hypothesis: a parent run with the ranking table,
a nested run per candidate with a drawing of its graph):
    mlflow ui --backend-store-uri sqlite:///mlflow.db
`--out DIR` writes summary.json (true_graph_rank, num_candidates, true_beats_missing_or_reversed,
ranking), ranking.md/.csv and graphs/*.png. Exit codes: 0 all trials finished, 1 a trial
failed, 2 bad config or graph.
"""

from genlab.causal.gen.config import HypothesisConfig
from genlab.causal.gen.hypothesis import run_hypothesis_test
from genlab.cli import run_config_job

if __name__ == "__main__":
    run_config_job(__doc__, HypothesisConfig, run_hypothesis_test,
                   default_config="conf/causal_hypothesis.yaml", default_out="out/causal_hypothesis")
