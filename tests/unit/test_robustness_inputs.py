"""Issue 27 point 7: untrusted PoisonSet files and bad configs are refused with one clear line, exit code set, and
nothing written (the format's older checks: unit/test_poisonset.py)."""

import json
import re
import zipfile

import numpy as np
import pytest

from genlab.cli import run_job
from genlab.config import load_config
from genlab.errors import ConfigError, PoisonSetError
from genlab.runtime import resolve_device
from genlab.sweep.config import SweepConfig
from tests.helpers import load_poisons, run_job_main


def _rewrite_meta(path, **changes):
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.update(changes)
    path.with_suffix(".json").write_text(json.dumps(meta))


@pytest.mark.parametrize("changes, reason", [
    ({"target_class": None}, "target_class must be an integer class"),
    ({"target_class": 10}, "target_class must be an integer class"),
    ({"target_class": True}, "target_class must be an integer class"),
    ({"target_test_indices": [0, 0]}, "target_test_indices must be unique"),
    ({"target_test_indices": [-1]}, "target_test_indices must be unique"),
    ({"target_test_indices": "12"}, "target_test_indices must be unique"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": "0"}, "seed must be a non-negative integer"),
    ({"seed": 1.5}, "seed must be a non-negative integer"),
    ({"kind": "targeted", "target_test_indices": [3], "epsilon": None}, "needs its epsilon budget"),
    ({"kind": "targeted", "target_test_indices": []}, "needs target_test_indices"),
    ({"epsilon": float("nan")}, "epsilon must be a non-negative finite number"),
    ({"attack": "/tmp/x"}, "attack must be a plain name"),
    ({"attack": "../../x"}, "attack must be a plain name"),
    ({"attack": ".."}, "attack must be a plain name"),
], ids=["no-target", "target-range", "target-bool", "dup-rows", "neg-row", "rows-str", "neg-seed", "str-seed",
        "float-seed", "targeted-null-eps", "targeted-no-rows", "nan-eps", "abs-attack", "rel-attack", "dotdot"])
def test_bad_metadata_is_refused(blend_file, digits, changes, reason):
    _, path = blend_file
    _rewrite_meta(path, **changes)
    with pytest.raises(PoisonSetError, match=reason):
        load_poisons(path, digits[0])


def test_target_rows_are_checked_against_the_test_set(blend_file, digits):
    from genlab.data.poisonset import load_poison_set_for

    train, test = digits
    _, path = blend_file
    _rewrite_meta(path, target_test_indices=[len(test)])
    assert load_poison_set_for(path, train).target_test_indices == [len(test)]  # no test set: only the form checked
    with pytest.raises(PoisonSetError, match=rf"test rows in \[0, {len(test)}\)"):
        load_poison_set_for(path, train, test)


def test_oversized_member_is_refused_from_its_zip_header(blend_file, digits):
    """An images member that would decompress to 8 MB (a few KB compressed) is refused by its declared size."""
    poison, path = blend_file
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in {"base_indices": poison.base_indices, "labels": poison.labels,
                            "trigger_mask": poison.trigger.mask, "trigger_pattern": poison.trigger.pattern,
                            "trigger_delta": poison.trigger.delta}.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array)
        with archive.open("images.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.zeros((8_000_000,), np.uint8))
    assert path.stat().st_size < 100_000
    with pytest.raises(PoisonSetError, match="bytes uncompressed, over the"):
        load_poisons(path, digits[0])


def test_header_declaring_a_huge_array_is_refused_before_reading(blend_file, digits):
    """An npy header that claims a billion rows in a small member is refused from the header."""
    poison, path = blend_file
    header = {"descr": "|u1", "fortran_order": False, "shape": (10**9, 16, 16, 1)}
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in {"base_indices": poison.base_indices, "labels": poison.labels,
                            "trigger_mask": poison.trigger.mask, "trigger_pattern": poison.trigger.pattern,
                            "trigger_delta": poison.trigger.delta}.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array)
        with archive.open("images.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(b"\0" * 1000)
    with pytest.raises(PoisonSetError, match="over the .* bytes this dataset allows"):
        load_poisons(path, digits[0])


def test_import_job_refuses_an_attack_name_that_is_a_path(blend_file, tmp_path, capsys, monkeypatch):
    _, path = blend_file
    outside = tmp_path / "outside"
    _rewrite_meta(path, attack=str(outside / "x"))
    with pytest.raises(SystemExit) as exited:
        run_job(lambda: run_job_main("import_poisons.py", [str(path), f"work_dir={tmp_path / 'work'}"], monkeypatch))
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "attack must be a plain name" in err[0]
    assert not outside.exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("yaml_text, override, key", [
    ("include: [self.yaml]\nseed: 1\n", [], "includes itself"),
    ("seed: 0\n", ["seed=-3"], "config key seed: .*non-negative"),
    ("seed: 0\n", ["seeds=[0,-1]"], "config key seeds: .*non-negative"),
    ("seed: 0\n", ["classifier.device=gpu"], "config key classifier.device: .*unknown device 'gpu'"),
    ("seed: 0\n", ["classifier.device=cuda:x"], "config key classifier.device: .*unknown device"),
], ids=["self-include", "negative-seed", "negative-seeds", "device-gpu", "device-cuda-x"])
def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys, yaml_text, override, key):
    config = tmp_path / "self.yaml"
    config.write_text(yaml_text)
    with pytest.raises(SystemExit) as exited:
        run_job(lambda: load_config(SweepConfig, config, override) and 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1, err
    assert re.search(key, err[0]), err[0]


def test_include_cycle_through_another_file_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(SweepConfig, tmp_path / "a.yaml")


def test_unknown_device_string_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert str(resolve_device("cpu")) == "cpu"
