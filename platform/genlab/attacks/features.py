"""The features feature-collision attacks (Bullseye Polytope, Hidden Trigger Backdoor) move poisons to:
a classifier's penultimate feature and, end to end, every feature block's output."""

from __future__ import annotations

import torch
from torch import nn

from genlab.models.classifiers import feature_stages, head_name


def feature_maps(model: nn.Module, images: torch.Tensor, *, end_to_end: bool) -> list[torch.Tensor]:
    """Return the features the poisons are matched on, each flattened to [N, D]: the penultimate feature (the
    head's input), preceded by every feature block's output when `end_to_end`."""
    net = model.net
    captured: list[torch.Tensor] = []
    modules = (feature_stages(net) if end_to_end else []) + [getattr(net, head_name(net))]
    hooks = [m.register_forward_hook(lambda _m, args, out, head=m is modules[-1]: captured.append(
        (args[0] if head else out).flatten(1))) for m in modules]
    try:
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
    return captured
