"""Train Causal Gen, Causal Variational Gen and the non-causal baselines; compare OOD errors.

Every model (one Ray Tune trial each) is trained on the same tables (one per seed, drawn
from an SCM over the true graph, or the pendulum's labels) and scored on the deliberate
out-of-distribution splits: each split holds out the top quarter of one variable.

Local (embedded Ray, MLflow at sqlite:///mlflow.db in the working directory):
    python jobs/causal_train.py                                   # conf/causal_train.yaml (pendulum)
    python jobs/causal_train.py --config conf/causal_train_low_snr.yaml --out out/low_snr
    python jobs/causal_train.py --out out/train seeds=[0,1,2,3,4]
On a Ray cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/causal_train.py
Then look at the runs (experiment causal-train):
    mlflow ui --backend-store-uri sqlite:///mlflow.db
`--out DIR` writes summary.json (per model: ood_mse mean and s.e. over seeds, by split;
causal_beats_baselines) and models.md/.csv. Exit codes: 0 all trials finished, 1 a trial
failed, 2 bad config or graph.
"""

from genlab.causal.gen.comparison import run_model_comparison
from genlab.causal.gen.config import CausalTrainConfig
from genlab.cli import run_config_job

if __name__ == "__main__":
    run_config_job(__doc__, CausalTrainConfig, run_model_comparison,
                   default_config="conf/causal_train.yaml", default_out="out/causal_train")
