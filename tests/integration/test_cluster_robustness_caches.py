"""Issue 27 points 4 and 8: caches and model directories under concurrency (file locks, no delete-before-rename),
and a model checkpoint resumed under another MLflow store."""

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from genlab.fileio import atomic_directory
from genlab.purify.cache import PurificationCache, PurifiedImages
from tests.integration.tiny_models import TINY_EBM

WRITERS, ROUNDS = 4, 100


def _hammer_one_key(root: str, writer: int) -> list[str]:
    """Write and read one purification-cache key ROUNDS times, and replace one `atomic_directory` as often;
    return the problems seen (exceptions, incomplete reads)."""
    cache = PurificationCache(os.path.join(root, "purified"))
    rows = np.arange(64, dtype=np.int64)
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)  # one key, one content
    problems = []
    for round_ in range(ROUNDS):
        try:
            cache.put("key", PurifiedImages(rows, {0: images, 5: images[::-1]}, 10.0), rows % 10, {"round": 0})
            got = cache.get("key")
            if got is None or not (np.array_equal(got.by_steps[0], images) and np.array_equal(got.by_steps[5], images[::-1])
                                   and np.array_equal(got.row_ids, rows)):
                problems.append(f"round {round_}: incomplete read")
            with atomic_directory(os.path.join(root, "replaced")) as tmp:
                (tmp / "a.txt").write_text(f"{writer}-{round_}")
        except Exception as exc:  # every error is a finding of this test
            problems.append(f"round {round_}: {type(exc).__name__}: {exc}")
    return problems


def test_four_processes_write_and_read_one_key(tmp_path):
    # forkserver: the writers fork from a clean single-threaded server that imported this module once (a spawned
    # one spends longer importing than writing; a plain fork of this worker, with Ray's and torch's threads, can
    # deadlock in the child)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with context.Pool(WRITERS) as pool:
        problems = pool.starmap(_hammer_one_key, [(str(tmp_path), w) for w in range(WRITERS)])
    assert problems == [[]] * WRITERS
    assert (tmp_path / "replaced" / "a.txt").read_text().split("-")[1] in {str(r) for r in range(ROUNDS)}
    assert sorted(p.name for p in (tmp_path / "purified").iterdir()) == [".key.lock", "key"]  # no temp dirs left


def _provide_ebm(config: str, work: str, uri: str) -> str:
    os.environ["MLFLOW_TRACKING_URI"] = uri
    import torch

    from genlab.data import DatasetConfig, load_dataset
    from genlab.purify.ebm import EbmSettings
    from genlab.sweep.provisioning import provide_models

    torch.set_num_threads(1)
    train, _ = load_dataset(DatasetConfig())
    return provide_models(EbmSettings(), {"ebm": config}, DatasetConfig(), train, Path(work)).checkpoint


def test_two_concurrent_provisionings_of_one_model_train_it_once(tmp_path, mlflow_store):
    config = tmp_path / "train_ebm.yaml"
    config.write_text(yaml.safe_dump({"poison": None, **TINY_EBM, "register_model": False}))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        checkpoints = pool.starmap(_provide_ebm, [(str(config), str(tmp_path / "work"), mlflow_store)] * 2)
    assert checkpoints[0] == checkpoints[1]
    client = MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("train-ebm").experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]  # one training run, not two


def test_checkpoint_resumes_into_another_mlflow_store(tmp_path, mlflow_store, monkeypatch, digits):
    from genlab.config import validate
    from genlab.train.ebm import EbmTrainConfig, EbmTrainer, train_ebm

    train = digits[0]
    cfg = validate(EbmTrainConfig, {**TINY_EBM, "register_model": False, "experiment": "two-stores"})
    real_step = EbmTrainer.train_step

    def step_then_stop(self, state):
        if state.step == 2:  # after the checkpoint at iteration 2: the sweep is stopped
            raise KeyboardInterrupt
        return real_step(self, state)

    monkeypatch.setattr(EbmTrainer, "train_step", step_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_ebm(cfg, train, train.images[:4], tmp_path / "ebm", run_name="ebm", registered_name="unused")
    first_store = MlflowClient(mlflow_store)
    (first,) = first_store.search_runs([first_store.get_experiment_by_name("two-stores").experiment_id])
    assert first.info.status == "KILLED"
    monkeypatch.setattr(EbmTrainer, "train_step", real_step)
    second_uri = f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}"
    (tmp_path / "second").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", second_uri)
    result = train_ebm(cfg, train, train.images[:4], tmp_path / "ebm", run_name="ebm", registered_name="unused")
    assert result.resumed_from == 2
    second_store = MlflowClient(second_uri)
    (run,) = second_store.search_runs([second_store.get_experiment_by_name("two-stores").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id != first.info.run_id
    assert run.data.tags["genlab.resumed_run_id"] == first.info.run_id
    assert run.data.tags["genlab.resumed_from"] == "2"
    assert [m.step for m in second_store.get_metric_history(run.info.run_id, "energy_data")] == [4]
