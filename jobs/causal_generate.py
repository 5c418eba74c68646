"""Generate data with Causal Gen / Causal Variational Gen (ancestral sampling, do()) and measure it against baselines.

Per seed: an SCM over the true graph, a table, a random quarter held out; Causal Gen, Causal
Variational Gen, the fully connected predictor (complete DAG over the column order) and the
whole-row VAE are trained in-process, each at its own learning rate, and scored by the energy
distance of their generated rows to the held-out rows and by the error of their do() means
against the true SCM's (standardised units). Runs in-process (no Ray): four small models a seed.

    python jobs/causal_generate.py                           # conf/causal_generate.yaml, a few minutes
    python jobs/causal_generate.py --out out/generate seeds=[0,1,2,3,4,5,6,7]
Then: mlflow ui --backend-store-uri sqlite:///mlflow.db (experiment causal-generate).
`--out DIR` writes summary.json (per model: energy_distance, do_mean_error, mean and s.e. over
seeds), generation.md and graph.png. Exit codes: 0 done, 2 bad config or graph.
"""

from genlab.causal.gen.synthesis import GenerateConfig, run_generation_study
from genlab.cli import run_config_job

if __name__ == "__main__":
    run_config_job(__doc__, GenerateConfig, run_generation_study,
                   default_config="conf/causal_generate.yaml", default_out="out/causal_generate")
