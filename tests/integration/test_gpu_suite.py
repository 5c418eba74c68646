"""`bench/gpu_suite.sh --smoke`: the one-call GPU suite, run on the CPU at tiny sizes, writes one JSON line per
benchmark with the figures a GPU session would read, and a failing benchmark leaves an error line, not a gap."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO


def test_smoke_suite_writes_one_json_line_per_benchmark_and_an_error_line_for_a_failing_one(tmp_path):
    python = tmp_path / "python"  # the real interpreter, except that the training benchmark fails
    python.write_text(f'#!/bin/sh\ncase "$*" in *trial_cost.py*) echo "CUDA error: out of memory" >&2; exit 3;; esac\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_suite.sh"), "--smoke", str(out)], cwd=REPO,
                          env={**os.environ, "PYTHON": str(python)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {name: (out / f"{name}.json").read_text().splitlines()
             for name in ("purify_ebm", "purify_ddpm", "purify_puregen", "trial_cost")}
    assert all(len(found) == 1 for found in lines.values()), lines
    purify = {name: json.loads(lines[f"purify_{name}"][0]) for name in ("ebm", "ddpm")}
    assert [figures["purifier"] for figures in purify.values()] == ["ebm", "ddpm"]
    for figures in purify.values():
        assert figures["vs_reference_loop"] > 0 and figures["speed_path"]["dtype"] == "fp32"  # a CPU: never bf16
        assert figures["mean_abs_difference"] <= 0.05 * figures["reference_mean_abs_change"]
    assert 0 < purify["ebm"]["fraction_of_peak"] < 1.5 and purify["ebm"]["peak_conv_gflops"] > 0
    assert set(json.loads(lines["purify_puregen"][0])["purifiers"]) == {"puregen-naive", "puregen-filt"}
    failed = json.loads(lines["trial_cost"][0])
    assert failed["bench"] == "trial_cost" and failed["rc"] == 3 and "out of memory" in failed["log_tail"]


def test_the_suites_training_benchmark_reports_its_ratio(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "trial_cost.py"), "--device", "cpu", "--images", "64"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert figures["vs_reference_loop"] > 0 and figures["reference_epoch_s"] > 0 and figures["fast_epoch_s"] > 0
