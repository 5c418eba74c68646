"""Sleeper Agent's config refuses snapshot epochs its surrogate never reaches (efficacy:
integration/test_sleeper_agent.py)."""

import pytest

from genlab.train.classifier import ClassifierConfig


def test_snapshot_epochs_beyond_the_surrogate_are_refused():
    from pydantic import ValidationError

    from genlab.attacks import SleeperAgentConfig

    with pytest.raises(ValidationError, match="snapshot_epochs"):
        SleeperAgentConfig(snapshot_epochs=[9], surrogate=ClassifierConfig(epochs=8))
