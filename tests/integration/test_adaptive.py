"""jobs/adaptive_eval.py end to end on a planted gradient-masking purifier: the run is in MLflow with its
accuracies, summary.json holds the checks, and the unbounded check fails the job (exit 1, last line says so).
The defense sweep's crafting step crafts a defense-aware attack through its EBM and logs it in its run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from genlab.attacks.crafting import cache_key
from genlab.checkpoints import save_model
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.baselines import NoneSettings
from genlab.purify.ebm import EBM_KIND, EbmSettings
from genlab.sweep.config import SweepConfig
from genlab.sweep.training_sets import craft_poison_sets
from genlab.tracking import tracked_run
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


def test_the_sweep_crafts_an_aware_attack_through_its_ebm_and_logs_it(digits, mlflow_store, tmp_path):
    train, test = digits
    torch.manual_seed(0)
    checkpoint = str(save_model(tmp_path / "ebm", build_ebm(EbmNetConfig(nf=4)), kind=EBM_KIND))
    cfg = SweepConfig(work_dir=str(tmp_path / "work"), attacks=[{
        "name": "narcissus_ebm_aware", "purifier_steps": 2, "poison_fraction": 0.02, "pood_samples_per_class": 10,
        "surrogate": {"epochs": 1, "width": 4}, "trigger_steps": 2, "trigger_batch_size": 8}])
    with tracked_run("aware-sweep", run_name="sweep", config=cfg, seed=cfg.seed, dataset_hash=train.hash) as run:
        poisons = craft_poison_sets(cfg, [NoneSettings(), EbmSettings(checkpoint=checkpoint)], train, test, run)
    aware = poisons["narcissus_ebm_aware"]
    assert aware.config["purifier_checkpoint"] == checkpoint and aware.trigger.delta.any()
    logged = MlflowClient(mlflow_store).download_artifacts(run.run_id, "poisons/narcissus_ebm_aware.json", str(tmp_path))
    assert json.loads(Path(logged).read_text()) == aware.metadata()
    resolved = cfg.attacks[0].model_copy(update={"purifier_checkpoint": checkpoint})  # what keys the cache
    (crafted,) = [p for p in (tmp_path / "work" / "poisons").iterdir() if not p.name.startswith(".")]  # not its lock
    assert crafted.name == f"narcissus_ebm_aware-{cache_key(train.hash, resolved, cfg.seed)}"
