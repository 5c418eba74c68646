"""What every causal job does around its own work: open its MLflow run, write and log its reports, say where
to look. Both wings (genlab.causal.gen and genlab.causal.ccgm) run their jobs through these."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from genlab.fileio import write_json_atomic, write_text_atomic
from genlab.tracking import TrackedRun, tracked_run, ui_command


@contextmanager
def job_run(experiment: str, label: str, *, config: Any, seed: int, dataset_hash: str) -> Iterator[TrackedRun]:
    """Yield the job's MLflow run, named `<label>-<YYYYmmdd-HHMMSS>` (genlab.tracking.tracked_run: config as
    params, standard tags; FAILED on an exception, KILLED on Ctrl-C or SIGTERM)."""
    with tracked_run(experiment, run_name=f"{label}-{time.strftime('%Y%m%d-%H%M%S')}", config=config, seed=seed,
                     dataset_hash=dataset_hash) as run:
        yield run


def write_reports(run: TrackedRun, out_dir: Path, summary: dict[str, Any], files: dict[str, str] | None = None) -> Path:
    """Write `summary.json` and the text `files` (name -> content) to `out_dir`, log them under `report/` of
    the run, print where the summary and the runs are; return summary.json's path."""
    summary_path = write_json_atomic(Path(out_dir) / "summary.json", summary)
    paths = [summary_path, *(write_text_atomic(Path(out_dir) / name, text) for name, text in (files or {}).items())]
    for path in paths:
        run.client.log_artifact(run.run_id, str(path), "report")
    print(f"[genlab] summary: {summary_path}\n[genlab] look at the runs: {ui_command()}")
    return summary_path
