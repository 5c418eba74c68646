"""Generative models a sweep needs are trained on first use and reused afterwards (a given checkpoint is left alone:
unit/test_sweep_models.py)."""

from pathlib import Path

import yaml

from genlab.purify.ebm import EbmSettings
from genlab.sweep.provisioning import provide_models
from tests.integration.tiny_models import TINY_EBM

TINY = {**TINY_EBM, "register_model": False}


def _weight_stamps(models: Path) -> list[tuple[str, int]]:
    """Return (file name, mtime in ns) of every trained EBM's weight files under `models`."""
    return sorted((p.name, p.stat().st_mtime_ns) for p in models.glob("ebm-*/model/*"))


def test_missing_ebm_is_trained_once_then_reused(mlflow_store, digits, tmp_path, capsys):
    config = tmp_path / "train_ebm.yaml"
    config.write_text(yaml.safe_dump({"poison": None, **TINY}))
    from genlab.data import DatasetConfig

    first = provide_models(EbmSettings(), {"ebm": str(config)}, DatasetConfig(), digits[0], tmp_path / "work")
    assert "training one" in capsys.readouterr().out
    stamp = _weight_stamps(tmp_path / "work" / "models")  # not finished.json: its time is the LRU mark of every reuse
    second = provide_models(EbmSettings(), {"ebm": str(config)}, DatasetConfig(), digits[0], tmp_path / "work")
    assert second.checkpoint == first.checkpoint and "training one" not in capsys.readouterr().out
    assert stamp and _weight_stamps(tmp_path / "work" / "models") == stamp  # the weights were not written again
    assert first.weights_fingerprint() == second.weights_fingerprint()
