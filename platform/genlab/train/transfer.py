"""Transfer-learning regimes for the classifier: start from a pretrained feature extractor.

`ClassifierConfig.regime` picks one (spec section 6):
- `scratch`: a fresh network (the default; handled by train_classifier itself);
- `linear_probe`: the pretrained network with a re-initialised linear head; only the head
  trains and batch norm stays in eval mode (the "linear transfer" of Bullseye Polytope);
- `fine_tune`: the pretrained network with a re-initialised linear head; every weight trains
  (the "end-to-end" transfer).
The pretrained network is a genlab checkpoint directory (safetensors + JSON, never pickled)
written by `save_classifier`, holding the network, its input normalisation and the training
config (of which loading reads the network's `arch` and `width`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel
from torch import nn

from genlab.checkpoints import load_checkpoint, load_state_into, save_checkpoint
from genlab.errors import CheckpointError
from genlab.models.classifiers import LinearProbeClassifier, NormalizedClassifier, build_classifier, head_name

CHECKPOINT_KIND = "classifier"


def save_classifier(path: str | Path, model: NormalizedClassifier, cfg: BaseModel, *, in_channels: int,
                    num_classes: int) -> Path:
    """Write a trained classifier (network + normalisation buffers) and its training config `cfg` (a
    `ClassifierConfig`) as a checkpoint directory; return its path."""
    return save_checkpoint(path, kind=CHECKPOINT_KIND, config=cfg, tensors={"model": model.state_dict()},
                           meta={"in_channels": in_channels, "num_classes": num_classes})


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> NormalizedClassifier:
    """Return the classifier saved by `save_classifier` at `path`, in eval mode on `device`."""
    tensors, index = load_checkpoint(path, kind=CHECKPOINT_KIND, device=device)
    try:
        in_channels, num_classes = int(index["meta"]["in_channels"]), int(index["meta"]["num_classes"])
        net = build_classifier(index["config"]["arch"], in_channels=in_channels, num_classes=num_classes,
                               width=int(index["config"]["width"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: classifier config/meta is invalid ({str(exc).splitlines()[0]})") from None
    model = NormalizedClassifier(net, torch.zeros(in_channels), torch.ones(in_channels))
    load_state_into(model, tensors["model"], Path(path))
    return model.to(device).eval()


def pretrained_classifier(pretrained: str | Path, regime: Literal["linear_probe", "fine_tune"], *, in_channels: int,
                          num_classes: int, device: torch.device) -> NormalizedClassifier:
    """Return the model a `linear_probe` / `fine_tune` run starts from: the classifier at `pretrained` with a
    fresh `num_classes` head (seeded by the caller's torch seed); in a linear probe only the head requires grad."""
    model = load_classifier(pretrained, device)
    if model.mean.shape[1] != in_channels:
        raise CheckpointError(f"{pretrained}: pretrained on {model.mean.shape[1]}-channel images, "
                              f"the data has {in_channels}")
    name = head_name(model.net)
    setattr(model.net, name, nn.Linear(getattr(model.net, name).in_features, num_classes).to(device))
    if regime == "linear_probe":
        probe = LinearProbeClassifier(model.net, model.mean.flatten(), model.std.flatten()).to(device)
        probe.net.requires_grad_(False)
        getattr(probe.net, name).requires_grad_(True)
        return probe
    return model
