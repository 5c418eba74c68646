"""How a sampler runs its network, shared by the Langevin and DDPM samplers: precision, memory
format and compilation. None of them changes the update a sampler computes, only how fast and
with which float rounding.

- `precision="fp32"`: fp32 arithmetic with torch's default backend flags (how the official code
  ran; on CUDA, torch's defaults let cuDNN convolutions use TF32).
- `precision="tf32"`: fp32 tensors, TF32 tensor cores for every convolution and matrix product
  on CUDA (the same as fp32 on CPU).
- `precision="bf16"`: the net runs under bf16 autocast, the chain state and the step arithmetic
  stay fp32, and on CUDA the fp32 operations autocast leaves use TF32. On CPU it is CPU bf16
  autocast, so tests can compare precisions without a GPU.
- `channels_last`: the net gets NHWC-strided inputs (cuDNN's fast convolution layout).
- `compile`: the net, and the per-row noise (`genlab.samplers.noise.chain_noise`, many small
  integer and float64 kernels when eager), go through `torch.compile`; the first call of each new
  batch shape pays the compilation.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Literal

import torch
from torch import nn

from genlab.samplers.noise import chain_noise

Precision = Literal["fp32", "tf32", "bf16"]


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Return 'fp32', 'tf32' or 'bf16' for a settings value ('auto' = bf16 on CUDA, fp32 elsewhere)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "tf32", "bf16"):
        raise ValueError(f"precision must be auto, fp32, tf32 or bf16, got {precision!r}")
    return precision  # type: ignore[return-value]


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """Let CUDA convolutions and matrix products use TF32 tensor cores inside the block (restored after)."""
    if not enabled:
        yield
        return
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    matmul.fp32_precision = conv.fp32_precision = "tf32"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


class NetRunner:
    """Calls `net(x, *args)` with the speed options of the module docstring; returns the output as fp32.

    The net is used as given (eval mode, device, frozen or not: the caller's choice); with
    `channels_last` its weights are converted to that memory format once, here.
    """

    def __init__(self, net: nn.Module, *, precision: Precision = "fp32", channels_last: bool = False,
                 compile: bool = False) -> None:
        self.device = next(net.parameters()).device
        self.precision = precision
        self.channels_last = channels_last
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.net = net
        self._forward = torch.compile(net) if compile else net
        self._use_tf32 = precision in ("tf32", "bf16") and self.device.type == "cuda"
        self.noise: Callable[..., torch.Tensor] = torch.compile(chain_noise, dynamic=False) if compile else chain_noise

    def __call__(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Return `net(x, *args)` as fp32 (gradients flow back to `x` when it requires them)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _tf32(self._use_tf32), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.precision == "bf16"):
            out = self._forward(x, *args)
        return out.float()

    def step_noise(self, keys: torch.Tensor, step: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Return `chain_noise(keys, step, shape)` (fp32), through the compiled noise when `compile` is set.

        The step index goes in as a device tensor, so compiled noise is not recompiled per step;
        it is copied without waiting for the device, so the chain's kernels stay queued.
        """
        return self.noise(keys, torch.tensor(step, dtype=torch.int64).to(keys.device, non_blocking=True), shape)
