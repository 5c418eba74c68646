"""The classifier's training options without real training: an unknown protocol is refused, and a run shorter than
a one-cycle schedule still trains (their accuracy: integration/test_fast_training.py)."""

import pytest
import torch

from genlab.config import ConfigError, load_config
from genlab.train.classifier import ClassifierConfig, train_classifier


def test_unknown_protocol_is_refused_naming_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("protocol: hlbb\n")
    with pytest.raises(ConfigError, match="protocol"):
        load_config(ClassifierConfig, path, [])


def test_fewer_steps_than_a_one_cycle_needs_still_train(digits):
    train, _ = digits
    cfg = ClassifierConfig(epochs=2, batch_size=512, width=4)
    before = train_classifier(train.images[:100], train.labels[:100], 10, cfg.model_copy(update={"lr": 1e-9}), seed=0)
    after = train_classifier(train.images[:100], train.labels[:100], 10, cfg, seed=0)
    assert not torch.equal(before.net.head.weight, after.net.head.weight)
