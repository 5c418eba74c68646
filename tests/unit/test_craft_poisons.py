"""The crafting cache: a crafted set is cached per seed and referenced by the sweep unchanged (the job and its
per-trial resume: integration/test_craft_poisons.py)."""

import json

import numpy as np

from genlab.attacks import BlendConfig
from genlab.attacks.crafting import craft_cached
from genlab.attacks.imported import ImportedPoisonConfig, load_imported


def test_crafted_set_is_cached_and_referenced_by_the_sweep_unchanged(digits, tmp_path):
    train, test = digits
    first = craft_cached(BlendConfig(), train, test, 0, tmp_path, progress=lambda line: None)
    again = craft_cached(BlendConfig(), train, test, 0, tmp_path, progress=lambda line: None)
    assert first.crafted_trials == [0] and again.crafted_trials == []
    assert json.loads((first.directory / "provenance.json").read_text())["dataset_hash"] == train.hash
    referenced = load_imported(ImportedPoisonConfig(path=str(first.poison_path)), train, seed=0)
    assert referenced.hash == first.poison.hash == again.poison.hash
    assert np.array_equal(referenced.images, first.poison.images)
    other_seed = craft_cached(BlendConfig(), train, test, 1, tmp_path, progress=lambda line: None)
    assert other_seed.directory != first.directory
