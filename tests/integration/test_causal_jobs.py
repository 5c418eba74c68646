"""Both causal jobs end to end on a real local Ray and a temp sqlite MLflow store (tiny settings), and the
hypothesis job refusing a cyclic graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from genlab.causal.gen.comparison import run_model_comparison
from genlab.causal.gen.config import CausalTrainConfig, HypothesisConfig
from genlab.causal.gen.hypothesis import run_hypothesis_test
from genlab.config import validate
from tests.helpers import REPO, run_job, sqlite_store

TINY = {"seeds": [0, 1], "train": {"epochs": 4}, "data": {"num_samples": 80},
        "tune": {"max_concurrent_trials": 2, "cpus_per_trial": 1}, "ray": {"num_cpus": 2}}


def runs_of(uri: str, experiment: str) -> tuple:
    """(parent run, child runs) of the only parent run in `experiment`."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return client, parents[0], children


def test_hypothesis_job_ranks_candidates_in_tune_and_mlflow(ray_session, mlflow_store, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = validate(HypothesisConfig, {
        **TINY, "work_dir": str(tmp_path / "work"), "model": {"kind": "causal_gen", "hidden": [8]},
        "candidates": {"single_edits": False, "distances": [2], "per_distance": 1,
                       "listed": [{"name": "no_x2_x3", "remove": [["x2", "x3"]]}]}})
    summary = run_hypothesis_test(cfg, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["num_candidates"] == 3 and summary["all_finished"]
    assert [row["rank"] for row in summary["ranking"]] == [1, 2, 3]
    assert {"name", "ood_mse", "ood_mse_se", "gap_to_true", "gap_to_true_se", "num_edges"} <= set(summary["ranking"][0])
    rank_of = {row["name"]: row["rank"] for row in summary["ranking"]}
    assert summary["true_graph_rank"] == rank_of["true"]

    client, parent, children = runs_of(mlflow_store, "causal-hypothesis")
    assert parent.info.status == "FINISHED" and parent.data.metrics["num_candidates"] == 3
    reports = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/ranking.md", "report/ranking.csv", "report/summary.json"} <= reports
    table = Path(client.download_artifacts(parent.info.run_id, "report/ranking.md", str(tmp_path))).read_text()
    assert table.startswith("| rank | name | ood_mse |") and "no_x2_x3" in table
    assert sorted(c.info.run_name for c in children) == sorted(row["name"] for row in summary["ranking"])
    ood_by_seed = {}
    for child in children:
        assert child.info.status == "FINISHED" and child.data.params["candidate"] == child.info.run_name
        drawings = client.list_artifacts(child.info.run_id, "graph")
        assert len(drawings) == 1 and drawings[0].path.endswith(".png")
        history = client.get_metric_history(child.info.run_id, "ood_mse")
        assert [m.step for m in history] == [0, 1]  # one value per seed
        ood_by_seed[child.info.run_name] = np.array([m.value for m in history])
        assert child.data.metrics["rank"] == rank_of[child.info.run_name]
    # The share of seeds in which the truth's OOD error (as MLflow holds it) is below every candidate missing or
    # reversing a true edge (no_x2_x3 is one).
    wrong = [ood_by_seed[row["name"]] for row in summary["ranking"] if row["missing"] > 0]
    beats = np.all([ood_by_seed["true"] < errors for errors in wrong], axis=0)
    assert wrong and summary["true_beats_missing_or_reversed"] == np.mean(beats)


def test_train_job_compares_models_on_pendulum(ray_session, mlflow_store, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = validate(CausalTrainConfig, {
        **TINY, "work_dir": str(tmp_path / "work"), "graph": "conf/graphs/pendulum.yaml",
        "data": {"kind": "pendulum", "num_samples": 80}, "split": {"variables": ["light"]},
        "models": [{"kind": "causal_gen", "hidden": [8]}, {"kind": "causal_variational_gen"},
                   {"kind": "vae", "hidden": [8]}, {"kind": "fully_connected", "hidden": [8]}]})
    summary = run_model_comparison(cfg, tmp_path / "out")
    assert [row["model"] for row in summary["models"]] == ["causal_gen", "causal_variational_gen", "vae",
                                                           "fully_connected"]
    assert all(row["status"] == "FINISHED" and row["ood_mse"] > 0 for row in summary["models"])
    assert summary["splits"] == ["light"]
    best = {causal: min(row["ood_mse"] for row in summary["models"] if row["causal"] == causal)
            for causal in (True, False)}
    assert summary["causal_beats_baselines"] == (best[True] < best[False])

    client, parent, children = runs_of(mlflow_store, "causal-train")
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "data")} == {"data/pendulum_split.png"}
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert all("train_loss" in c.data.metrics for c in children)


def test_job_with_cyclic_graph_exits_2_with_one_line(tmp_path):
    cyclic = tmp_path / "cyclic.yaml"
    cyclic.write_text("nodes: [a, b, c]\nedges: [[a, b], [b, c], [c, a]]\n")
    proc = run_job(["jobs/causal_hypothesis.py", f"graph={cyclic}"], sqlite_store(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: graph file {cyclic}: the graph has a cycle a -> b -> c -> a"]


def test_power_bench_records_its_study_in_mlflow_and_resumes(tmp_path):
    """bench/causal_power.py --out: per-graph log, summary.json, power.md, an MLflow run with the rates and the
    drawings; a second call with the same folder studies nothing again (a last log line cut short is dropped);
    other settings are refused."""
    uri, out = sqlite_store(tmp_path), tmp_path / "power"
    args = ["bench/causal_power.py", "--graphs", "2", "--seeds", "6", "--splits", "1", "--processes", "1",
            "--out", str(out)]
    first = run_job(args, uri, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    line = json.loads(first.stdout.strip().splitlines()[-1])
    summary = json.loads((out / "summary.json").read_text())
    assert line["graphs"] == 2 and len((out / "graphs.jsonl").read_text().splitlines()) == 2
    assert "| g00-linear |" in (out / "power.md").read_text() and "| g01-mlp |" in (out / "power.md").read_text()
    client = MlflowClient(uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["genlab.dataset_hash"]
    assert run.data.metrics["true_graph_first_rate_deliberate"] == line["true_graph_first_rate_deliberate"]
    drawings = {a.path for a in client.list_artifacts(run.info.run_id, "graphs")}
    assert {"graphs/g00-linear-truth.png", "graphs/g01-mlp-truth.png"} <= drawings
    lost = [g for g in summary["per_graph"] if g["first_deliberate"] != "true"]
    assert len(drawings) == 2 + len(lost)  # and the candidate that beat the truth, where one did

    with (out / "graphs.jsonl").open("a") as log:
        log.write('{"index": 1, "name": "g01-m')  # a write cut short by a kill
    again = run_job(args, uri, timeout=600)
    assert again.returncode == 0 and "power study:" not in again.stdout  # nothing studied twice
    assert "dropping a last line cut short" in again.stdout
    assert json.loads(again.stdout.strip().splitlines()[-1])["true_graph_first_rate_random"] == \
        line["true_graph_first_rate_random"]
    assert len((out / "graphs.jsonl").read_text().splitlines()) == 2
    other = run_job([*args[:4], "7", *args[5:]], uri, timeout=600)
    assert other.returncode != 0 and "other settings" in other.stderr
