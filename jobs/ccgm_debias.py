"""De-bias a dataset with CCGM: train on biased SCM data, cut the unwanted edge, measure bias before and after.

The default config draws a known SCM over group -> score <- skill, score -> outcome <- skill
(group -> score is the bias), trains a CCGM on its rows, checks do() means against the true
interventional means (with the tolerance of genlab.causal.ccgm.metrics), then generates a
biased and a de-biased dataset (edge cut) and reports the group-score dependence (|Pearson|,
mutual information, HSIC with its p-value) and the SkewSize of a classifier trained on each (genlab.causal.ccgm.debias).

Local (MLflow at sqlite:///mlflow.db in the working directory):
    python jobs/ccgm_debias.py --out out/ccgm_debias              # conf/ccgm_debias.yaml, about a minute
    python jobs/ccgm_debias.py --out out/d seed=1 data.scm.snr_db=10
On a Ray cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/ccgm_debias.py
Then: mlflow ui --backend-store-uri sqlite:///mlflow.db   (experiment ccgm-debias)
`--out DIR` (default out/ccgm_debias) receives summary.json (intervention_mean_abs_error,
intervention_tolerance, skewsize_biased, skewsize_debiased, bias: every measure) and model/.
Exit 2 on a bad config (the message names the key).
"""

from genlab.causal.ccgm.config import CCGMDebiasConfig
from genlab.causal.ccgm.runner import run_ccgm_debias
from genlab.cli import run_config_job

if __name__ == "__main__":
    run_config_job(__doc__, CCGMDebiasConfig, run_ccgm_debias,
                   default_config="conf/ccgm_debias.yaml", default_out="out/ccgm_debias")
