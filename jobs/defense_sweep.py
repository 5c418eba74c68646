"""Defense sweep: attacks x purifiers x seeds -> natural accuracy and poison success, in MLflow.

`genlab.sweep.runner.run_sweep` splits the pool (generative / classifier / test rows), then runs its
five steps in one MLflow run: craft the poisons, provision the generative models (on rows the
classifier never sees; the defense-aware poisons are crafted through them), purify the training sets (Ray Data), train one classifier per trial (Ray
Tune), report (results tables with n and 95% CIs, Pareto plot).

Local (embedded Ray, MLflow at sqlite:///mlflow.db in the working directory):
    python jobs/defense_sweep.py                                  # conf/defense_sweep.yaml
    python jobs/defense_sweep.py --out out/sweep classifier.epochs=5 seeds=[0,1]
On a Ray cluster (head started with `ray start --head --dashboard-host 127.0.0.1`):
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python jobs/defense_sweep.py
    (caches and outputs go to $GENLAB_HOME, else ~/genlab-work, not into Ray's temporary copy of the upload)
After a killed driver, finish the same sweep (finished trials are kept, not rerun):
    python jobs/defense_sweep.py --resume
Then look at the runs:
    mlflow ui --backend-store-uri sqlite:///mlflow.db
Exit codes: 0 all trials finished, 1 a trial failed, 2 bad config.
"""

from genlab.cli import parse_job_args, run_job
from genlab.config import load_config
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import load_resume_state, run_sweep
from genlab.workspace import in_workspace, workspace_line


def main() -> int:
    args = parse_job_args(__doc__.splitlines()[0], default_config="conf/defense_sweep.yaml",
                          extra=lambda p: p.add_argument("--resume", action="store_true",
                                                         help="finish the latest sweep of this config's experiment"))
    cfg = load_config(SweepConfig, args.config, args.overrides)
    state = None
    if args.resume:
        cfg, state = load_resume_state(cfg.work_dir, cfg.experiment, cfg.tune.storage_path)
    out_dir = args.out or in_workspace("out/defense_sweep")
    print(workspace_line(cfg.work_dir, out_dir))
    result = run_sweep(cfg, out_dir, resume_state=state)
    return 0 if result.all_finished else 1


if __name__ == "__main__":
    run_job(main)
