"""The classifier's fast path (bf16, channels-last) and the HLB-like fast protocol train as well as the reference."""

import numpy as np
import pytest
import torch

from genlab.config import ConfigError, load_config
from genlab.train.classifier import ClassifierConfig, predict, train_classifier


def _accuracy(digits, cfg: ClassifierConfig) -> float:
    train, test = digits
    torch.set_num_threads(1)
    model = train_classifier(train.images, train.labels, 10, cfg, seed=0)
    return float(np.mean(predict(model, test.images) == test.labels))


def test_bf16_channels_last_training_matches_fp32_accuracy(digits):
    reference = _accuracy(digits, ClassifierConfig(epochs=6))
    fast = _accuracy(digits, ClassifierConfig(epochs=6, precision="bf16", channels_last=True))
    assert reference >= 0.95 and abs(fast - reference) <= 0.015, (reference, fast)


def test_hlb_protocol_fills_unset_fields_and_trains_a_good_classifier(digits):
    cfg = ClassifierConfig(protocol="hlb", epochs=12)
    assert (cfg.arch, cfg.epochs, cfg.label_smoothing, cfg.schedule) == ("hlb_resnet", 12, 0.2, "triangular")
    assert cfg.model_dump()["protocol"] == "hlb"  # logged with every run's params
    assert _accuracy(digits, cfg) >= 0.95


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
