"""The attacker's models: a surrogate classifier trained on the (clean or poisoned) training set, kept
as snapshots along its training and memoised per process, or the victim's pretrained network."""

from __future__ import annotations

import copy

import torch
from torch import nn

from genlab.data.imageset import ImageSet
from genlab.runtime import resolve_device
from genlab.train.classifier import ClassifierConfig, train_classifier
from genlab.train.transfer import load_classifier

_SURROGATES: dict[tuple[str, str, int, tuple[int, ...]], list[nn.Module]] = {}


def surrogate_snapshots(train: ImageSet, cfg: ClassifierConfig, seed: int, epochs: tuple[int, ...]) -> list[nn.Module]:
    """Return copies (eval mode) of one surrogate trained on the `train` set, taken after each of
    `epochs` (1..cfg.epochs, ascending), memoised per process so every trial of an attack shares them."""
    key = (train.hash, cfg.model_dump_json(), seed, epochs)
    if key not in _SURROGATES:
        _SURROGATES.clear()
        snapshots: list[nn.Module] = []

        def keep(epoch: int, _loss: float, model: nn.Module) -> None:
            if epoch in epochs:
                snapshots.append(copy.deepcopy(model).eval())

        train_classifier(train.images, train.labels, len(train.classes), cfg, seed=seed, on_epoch=keep)
        _SURROGATES[key] = snapshots
    return _SURROGATES[key]


def clean_surrogate(train: ImageSet, cfg: ClassifierConfig, seed: int) -> nn.Module:
    """Return a classifier fully trained on the clean `train` set (eval mode), memoised per process."""
    return surrogate_snapshots(train, cfg, seed, (cfg.epochs,))[0]


def feature_extractor(pretrained: str | None, train: ImageSet, surrogate: ClassifierConfig, seed: int) -> nn.Module:
    """Return the network whose features an attack collides: the victim's `pretrained` checkpoint directory
    (loaded on `surrogate.device`), or without one the clean surrogate seeded `seed`."""
    if pretrained is not None:
        return load_classifier(pretrained, resolve_device(surrogate.device))
    return clean_surrogate(train, surrogate, seed)


def model_device(model: nn.Module) -> torch.device:
    """Return the device the model's weights live on."""
    return next(model.parameters()).device
