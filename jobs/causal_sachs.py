"""Structural hypothesis test on real data: rank the Sachs consensus graph against its single-edge edits.

The Sachs et al. (2005) protein-signalling measurements and consensus graph ship with the
`cdt` package (read from its installed files; see genlab.causal.sachs for the one cycle edge
dropped). Every acyclic single-edge edit of the consensus DAG is scored by a batched Causal Gen on
deliberate (tail) and random splits, 20 row draws; the consensus graph's rank is reported as
measured. In-process (one batched model per split kind, no Ray).

    python jobs/causal_sachs.py                           # conf/causal_sachs.yaml, about 5-10 min on 2 busy cores
Then: mlflow ui --backend-store-uri sqlite:///mlflow.db (experiment causal-sachs: rank metrics,
drawings of the consensus graph and the best edits under graphs/, the ranking tables).
`--out DIR` writes summary.json, ranking_{deliberate,random}.md/.csv and graphs/*.png.
Exit codes: 0 done, 2 bad config (or cdt not installed: pip install cdt).
"""

from genlab.causal.gen.consensus import SachsConfig, run_sachs_ranking
from genlab.cli import run_config_job

if __name__ == "__main__":
    run_config_job(__doc__, SachsConfig, run_sachs_ranking, default_config="conf/causal_sachs.yaml",
                   default_out="out/causal_sachs")
