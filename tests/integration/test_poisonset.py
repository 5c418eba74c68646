"""jobs/import_poisons.py accepts a good PoisonSet file into the poison cache and refuses a bad one with one line
(the format itself: unit/test_poisonset.py)."""

from genlab.attacks import BlendConfig, craft_poisons
from genlab.data.splits import DataSplitConfig, split_pool
from tests.helpers import rewrite_npz, run_job, sqlite_store


def test_import_job_accepts_good_and_refuses_bad_files(blend_file, digits, tmp_path):
    store = sqlite_store(tmp_path)
    # A sweep trains on the classifier rows of its pool split: the import validates against those rows.
    classifier_rows = split_pool(*digits, DataSplitConfig()).classifier
    poison = craft_poisons(BlendConfig(), classifier_rows, seed=0)
    path = poison.save(tmp_path / "blend-split")
    ok = run_job(["jobs/import_poisons.py", str(path), f"work_dir={tmp_path / 'work'}"], store, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert list((tmp_path / "work" / "poisons" / "imported").glob("blend-*.npz"))
    rewrite_npz(path, base_indices=poison.base_indices + 100_000)
    bad = run_job(["jobs/import_poisons.py", str(path), f"work_dir={tmp_path / 'work2'}"], store, timeout=300)
    assert bad.returncode == 1 and "base_indices must lie in" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "work2" / "poisons").exists()
    _, whole_set_path = blend_file  # crafted on the whole training set, rows the sweep's classifier never has
    other = run_job(["jobs/import_poisons.py", str(whole_set_path), f"work_dir={tmp_path / 'work3'}"], store,
                    timeout=300)
    assert other.returncode == 1 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert not (tmp_path / "work3" / "poisons").exists()
