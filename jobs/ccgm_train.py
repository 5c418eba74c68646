"""Train a CCGM (or its CausalVAE-style baseline) on pendulum images or a known SCM; intervene and evaluate.

The model: encoder -> partially trainable causal layer masked by the networkx DAG -> decoder
(genlab.causal.ccgm.model, spec section 6). Pendulum: the run gets an intervention grid (one row per
intervened node, values swept), counterfactual pixel errors against the renderer, and MIC/TIC x100
of each learned concept against its true factor (genlab.causal.mic). SCM:
do() means against the true interventional means. Both: reconstruction error, SHD of the
learned gates, loss curves, and the model as a safetensors checkpoint.

Local (MLflow at sqlite:///mlflow.db in the working directory):
    python jobs/ccgm_train.py                                     # conf/ccgm_train.yaml (pendulum images)
    python jobs/ccgm_train.py --out out/ccgm model.causal_layer=causalvae train.schedule=joint
    python jobs/ccgm_train.py data.kind=scm data.graph=conf/graphs/scm5.yaml model.concept_dim=1
On a Ray cluster:
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/ccgm_train.py
Then: mlflow ui --backend-store-uri sqlite:///mlflow.db   (experiment ccgm-train)
`--out DIR` (default out/ccgm_train) receives summary.json and model/. Exit 2 on a bad config.
"""

from genlab.causal.ccgm.config import CCGMJobConfig
from genlab.causal.ccgm.runner import run_ccgm_train
from genlab.cli import run_config_job

if __name__ == "__main__":
    run_config_job(__doc__, CCGMJobConfig, run_ccgm_train,
                   default_config="conf/ccgm_train.yaml", default_out="out/ccgm_train")
