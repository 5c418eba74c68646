"""Narcissus' field of the PoisonSet format: a file without `test_magnitude` reads as 1, a bad one is refused
(crafting and efficacy: integration/test_narcissus.py)."""

import json

import pytest

from genlab.attacks import BlendConfig, craft_poisons
from genlab.errors import PoisonSetError
from tests.helpers import load_poisons


def test_test_magnitude_defaults_to_one_and_is_validated(digits, tmp_path):
    train, _ = digits
    path = craft_poisons(BlendConfig(), train, seed=0).save(tmp_path / "blend")
    meta = json.loads(path.with_suffix(".json").read_text())
    del meta["test_magnitude"]  # a file written before the field existed
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert load_poisons(path, train).test_magnitude == 1.0
    path.with_suffix(".json").write_text(json.dumps({**meta, "test_magnitude": -3}))
    with pytest.raises(PoisonSetError, match="test_magnitude must be a positive finite number"):
        load_poisons(path, train)
