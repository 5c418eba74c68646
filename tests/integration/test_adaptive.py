"""jobs/adaptive_eval.py end to end on a planted gradient-masking purifier: the run is in MLflow with its
accuracies, summary.json holds the checks, and the unbounded check fails the job (exit 1, last line says so)."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from tests.helpers import REPO, run_job_main


def test_adaptive_eval_flags_a_gradient_masking_purifier(mlflow_store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    code = run_job_main("adaptive_eval.py", [
        "--out", str(out), "purifier={name: quantize, levels: 4}", "gradient=full", "classifier.epochs=2",
        "test_images=16", "eval_samples=1", "unbounded_steps=10", f"work_dir={tmp_path / 'work'}",
        'attacks=[{name: pgd, epsilons: ["8/255"], steps: 3}]'], monkeypatch)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 1 and "FAILED" in last and "unbounded_attack_succeeds" in last
    summary = json.loads((out / "summary.json").read_text())
    checks = {c["name"]: c["passed"] for c in summary["checks"]}
    assert checks["unbounded_attack_succeeds"] is False and summary["all_passed"] is False
    assert summary["clean_accuracy"] > 0.5  # the classifier works; only its gradients are masked
    client = MlflowClient(mlflow_store)
    (run,) = client.search_runs([client.get_experiment_by_name("adaptive-eval").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.metrics["clean_accuracy"] == summary["clean_accuracy"]
    assert "robust_accuracy/pgd-Linf-eps0.03137-s3-eot1" in run.data.metrics
