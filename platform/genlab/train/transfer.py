"""Transfer-learning regimes for the classifier: start from a pretrained feature extractor.

`ClassifierConfig.regime` picks one (spec section 6):
- `scratch`: a fresh network (the default; handled by train_classifier itself);
- `linear_probe`: the pretrained network with a re-initialised linear head; only the head
  trains and batch norm stays in eval mode (the "linear transfer" of Bullseye Polytope);
- `fine_tune`: the pretrained network with a re-initialised linear head; every weight trains
  (the "end-to-end" transfer).
The pretrained network is a genlab checkpoint directory (safetensors + JSON, never pickled)
written by `save_classifier`, holding the network and its input normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from genlab.checkpoints import load_checkpoint, load_state_into, save_checkpoint
from genlab.errors import CheckpointError
from genlab.models.classifiers import ConvGroup, build_classifier
from genlab.train.classifier import ClassifierConfig, NormalizedClassifier

CHECKPOINT_KIND = "classifier"


def head_name(net: nn.Module) -> str:
    """Return the attribute name of a classifier network's final linear layer (`head` or `fc`)."""
    for name in ("head", "fc"):
        if isinstance(getattr(net, name, None), nn.Linear):
            return name
    raise ValueError(f"{type(net).__name__} has no linear head named 'head' or 'fc'")


def feature_stages(net: nn.Module) -> list[nn.Module]:
    """Return the modules whose outputs are the network's successive feature blocks (shallow to deep)."""
    if all(hasattr(net, f"layer{i}") for i in range(1, 5)):
        return [getattr(net, f"layer{i}") for i in range(1, 5)]
    return [m for m in net.features if isinstance(m, (nn.ReLU, ConvGroup))]


class LinearProbeClassifier(NormalizedClassifier):
    """A NormalizedClassifier whose feature extractor stays in eval mode (frozen BN); only the head trains."""

    def train(self, mode: bool = True) -> "LinearProbeClassifier":
        """Set train mode on the head only; the rest stays in eval mode. Returns self."""
        super().train(mode)
        self.net.eval()
        getattr(self.net, head_name(self.net)).train(mode)
        return self


def save_classifier(path: str | Path, model: NormalizedClassifier, cfg: ClassifierConfig, *, in_channels: int,
                    num_classes: int) -> Path:
    """Write a trained classifier (network + normalisation buffers) as a checkpoint directory; return its path."""
    return save_checkpoint(path, kind=CHECKPOINT_KIND, config=cfg, tensors={"model": model.state_dict()},
                           meta={"in_channels": in_channels, "num_classes": num_classes})


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> NormalizedClassifier:
    """Return the classifier saved by `save_classifier` at `path`, in eval mode on `device`."""
    tensors, index = load_checkpoint(path, kind=CHECKPOINT_KIND, device=device)
    try:
        cfg = ClassifierConfig.model_validate(index["config"])
        in_channels, num_classes = int(index["meta"]["in_channels"]), int(index["meta"]["num_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: classifier config/meta is invalid ({str(exc).splitlines()[0]})") from None
    net = build_classifier(cfg.arch, in_channels=in_channels, num_classes=num_classes, width=cfg.width)
    model = NormalizedClassifier(net, torch.zeros(in_channels), torch.ones(in_channels))
    load_state_into(model, tensors["model"], Path(path))
    return model.to(device).eval()


def pretrained_classifier(cfg: ClassifierConfig, *, in_channels: int, num_classes: int,
                          device: torch.device) -> NormalizedClassifier:
    """Return the model a `linear_probe` / `fine_tune` run starts from: `cfg.pretrained` with a fresh
    `num_classes` head (seeded by the caller's torch seed); in a linear probe only the head requires grad."""
    model = load_classifier(cfg.pretrained, device)
    if model.mean.shape[1] != in_channels:
        raise CheckpointError(f"{cfg.pretrained}: pretrained on {model.mean.shape[1]}-channel images, "
                              f"the data has {in_channels}")
    name = head_name(model.net)
    setattr(model.net, name, nn.Linear(getattr(model.net, name).in_features, num_classes).to(device))
    if cfg.regime == "linear_probe":
        probe = LinearProbeClassifier(model.net, model.mean.flatten(), model.std.flatten()).to(device)
        probe.net.requires_grad_(False)
        getattr(probe.net, name).requires_grad_(True)
        return probe
    return model
