"""AdaBelief (Zhuang et al., NeurIPS 2020), the optimizer of the LAVAE code, without the extra package.

The configuration the LAVAE code uses: no rectification, no decoupled weight decay, no
weight decay, no AMSGrad. It is Adam whose second moment tracks the "belief"
s_t = EMA((g_t - m_t)^2) + eps instead of EMA(g_t^2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class AdaBelief(torch.optim.Optimizer):
    """AdaBelief with bias correction: p -= lr / (1 - b1^t) * m_t / (sqrt(s_t / (1 - b2^t)) + eps)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-16) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 (torch's signature)
        """Take one optimisation step; return the closure's loss when a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_belief"] = torch.zeros_like(param)
                state["step"] += 1
                mean, belief = state["exp_avg"], state["exp_avg_belief"]
                mean.mul_(beta1).add_(param.grad, alpha=1 - beta1)
                surprise = param.grad - mean
                belief.mul_(beta2).addcmul_(surprise, surprise, value=1 - beta2).add_(group["eps"])
                denom = (belief.sqrt() / math.sqrt(1 - beta2 ** state["step"])).add_(group["eps"])
                param.addcdiv_(mean, denom, value=-group["lr"] / (1 - beta1 ** state["step"]))
        return loss
