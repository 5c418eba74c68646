"""The classifier's fast path (bf16, channels-last) and the HLB-like fast protocol train as well as the reference
(the protocol's config and a run shorter than its schedule: unit/test_fast_training.py)."""

import numpy as np
import torch

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
