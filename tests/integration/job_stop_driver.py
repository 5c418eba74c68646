"""A driver for integration/test_cluster_robustness_jobstop.py, submitted with `ray job submit`: the sweep's
run structure (a `tracked_run` parent, `init_ray`, a Tune trial mirrored by `NestedRunCallback` as a child run)
around a trial that reports forever, so the test can stop the job while the child run is RUNNING.

    python tests/integration/job_stop_driver.py <tune storage dir>
"""

import sys
import time

from ray import tune

from genlab.cli import run_job
from genlab.runtime import RaySettings, init_ray
from genlab.tracking import NestedRunCallback, tracked_run, tracking_uri


def endless_trial(config: dict) -> None:
    """Report a step every half second until the job is stopped."""
    step = 0
    while True:
        step += 1
        tune.report({"step": step})
        time.sleep(0.5)


def main() -> int:
    with tracked_run("job-stop", run_name="parent", config={"storage": sys.argv[1]}, seed=0,
                     dataset_hash="none") as run:
        init_ray(RaySettings())
        callback = NestedRunCallback(tracking_uri=tracking_uri(), experiment_id=run.experiment_id,
                                     parent_run_id=run.run_id, tags={}, params={})
        tune.Tuner(endless_trial, param_space={"name": "endless"},
                   run_config=tune.RunConfig(storage_path=sys.argv[1], name="job-stop", callbacks=[callback])).fit()
    return 0


if __name__ == "__main__":
    run_job(main)
