"""The two wrappers an adaptive attack on a purifier needs (Athalye et al. 2018):

- `bpda(transform, x)`: Backward Pass Differentiable Approximation: the purifier in the forward
  pass, the identity in the backward pass (the gradient w.r.t. x is the gradient w.r.t. Psi(x)).
- `PurifiedClassifier`: classifier(Psi(x)) as one `nn.Module` taking [0, 1] images, with
  Expectation over Transformation: each forward averages the logits of `samples` independent
  purifier draws, so a gradient through it is the mean over those draws.

Everything else (PGD, APGD, AutoAttack) comes from torchattacks, which treats this module as the
model under attack.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

Transform = Callable[[torch.Tensor], torch.Tensor]


class _Bpda(torch.autograd.Function):
    """Forward: transform(x) without a graph; backward: the incoming gradient unchanged."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, transform: Transform) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            return transform(x.detach()).detach()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def bpda(transform: Transform, x: torch.Tensor) -> torch.Tensor:
    """Return transform(x), whose gradient w.r.t. x is taken to be the identity's (BPDA)."""
    return _Bpda.apply(x, transform)


class PurifiedClassifier(nn.Module):
    """logits(x) = mean over `samples` draws of classifier(255 * Psi(x)), for x [N, C, H, W] in [0, 1].

    `classifier` takes float images in [0, 255] (genlab's NormalizedClassifier). `gradient` is
    how Psi is differentiated: "bpda" (identity backward), or "full" (through the transform's
    own graph; a transform with masked gradients stays masked: what the sanity checks detect).
    """

    def __init__(self, classifier: nn.Module, transform: Transform, *, samples: int = 1,
                 gradient: str = "bpda") -> None:
        super().__init__()
        if samples < 1 or gradient not in ("bpda", "full"):
            raise ValueError(f"need samples >= 1 and gradient bpda or full, got {samples}, {gradient!r}")
        self.classifier, self.transform, self.samples, self.gradient = classifier, transform, samples, gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the EOT-averaged logits [N, classes]."""
        purified = [bpda(self.transform, x) if self.gradient == "bpda" else self.transform(x)
                    for _ in range(self.samples)]
        return torch.stack([self.classifier(255.0 * p) for p in purified]).mean(0)
