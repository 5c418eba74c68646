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
- `dense_convs`: the net runs as a copy lowered for each image shape (`genlab.samplers.lowering`):
  every convolution whose kernel covers its whole input is one dense matrix product (e.g. the
  small EBM's last two layers), and ReLU / LeakyReLU layers that follow a convolution run in place.
- `compile`: the net, and the per-row noise (`genlab.samplers.noise.chain_noise`, many small
  integer and float64 kernels when eager), go through `torch.compile`; the first call of each new
  batch shape pays the compilation.

`device_fast_path(device)` is the recipe each of those resolves to when a setting says `auto`
(`bench/purify_throughput.py` measures it against the official code's loop):

- CUDA: bf16 autocast (TF32 for the rest), channels-last, compiled (the H100 recipe of
  `../shared/specs`' GPU anchors); no dense lowering (not measured on a GPU).
- CPU: fp32 (never bf16: a CPU without bf16 units runs bf16 autocast hundreds of times slower),
  channels-last (oneDNN's fast layout: 1.4x NCHW on the Langevin gradient of the small EBM and
  of the paper's nf=128 one, 1.3x on the small UNet, measured on a 2-core Xeon), dense
  lowering of covering convolutions (1.15x more on the small EBM's gradient; in-place
  activations 1.1x more), eager (`torch.compile` measured 0.6x eager there, after 40 s of
  compilation). Its batch holds a fixed number of pixels (`cpu_batch_size`), so a batch's
  activations stay in the caches: for the EBM 64 Ki pixel values, 256 digits-size images
  (16x16x1: 1.06x batch 128, 512 is slower) or 16 CIFAR-size ones (32x32x3: the paper's nf=128
  EBM, 1.17x batch 32); for the UNet 128 Ki pixels per channel, 512 digits
  (1.3x batch 128). Measured side by side on a 2-core Xeon.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
from torch import nn

from genlab.samplers.lowering import activations_in_place, lower_covering_convolutions
from genlab.samplers.noise import chain_noise

Precision = Literal["fp32", "tf32", "bf16"]


@dataclass(frozen=True)
class SpeedPath:
    """How a sampler runs its network on one device: what the `auto` speed fields resolved to."""

    device: str  # "cpu" or "cuda"
    precision: Precision
    channels_last: bool
    dense_convs: bool
    compile: bool
    batch_size: int  # images per chain batch

    def params(self) -> dict[str, str]:
        """Return the path as MLflow params: device, dtype, memory_format, dense_convs, compiled, batch_size
        (strings)."""
        return {"device": self.device, "dtype": self.precision,
                "memory_format": "channels_last" if self.channels_last else "contiguous",
                "dense_convs": str(self.dense_convs).lower(), "compiled": str(self.compile).lower(),
                "batch_size": str(self.batch_size)}


def device_fast_path(device: torch.device) -> tuple[Precision, bool, bool, bool]:
    """Return (precision, channels_last, dense_convs, compile) of the fast path on `device` (module docstring):
    bf16, True, False, True on CUDA; fp32, True, True, False on a CPU."""
    return ("bf16", True, False, True) if device.type == "cuda" else ("fp32", True, True, False)


def cpu_batch_size(pixels_per_batch: int, image_pixels: int) -> int:
    """Return the CPU batch (images, a power of two in 16..1024) whose images hold about `pixels_per_batch` pixels
    together, for images of `image_pixels` pixels each (H x W, or H x W x C where a purifier counts channels)."""
    wanted = max(1, pixels_per_batch // max(1, image_pixels))
    return min(1024, max(16, 1 << (wanted.bit_length() - 1)))


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Return 'fp32', 'tf32' or 'bf16' for a settings value ('auto' = the device's fast path: bf16 on CUDA, fp32
    elsewhere)."""
    if precision == "auto":
        return device_fast_path(device)[0]
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
                 dense_convs: bool = False, compile: bool = False) -> None:
        self.device = next(net.parameters()).device
        self.precision = precision
        self.channels_last = channels_last
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.net = net
        self.dense_convs = dense_convs
        self._lowered: dict[tuple[int, ...], nn.Module] = {}  # image shape -> the net with its covering convs dense
        self._compile = compile
        self._forward = torch.compile(net) if compile and not dense_convs else net  # dense: compiled per shape below
        self._use_tf32 = precision in ("tf32", "bf16") and self.device.type == "cuda"
        self.noise: Callable[..., torch.Tensor] = torch.compile(chain_noise, dynamic=False) if compile else chain_noise

    def __call__(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        """Return `net(x, *args)` as fp32 (gradients flow back to `x` when it requires them)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _tf32(self._use_tf32), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.precision == "bf16"):
            out = self._network_for(x, *args)(x, *args)
        return out.float()

    def _network_for(self, x: torch.Tensor, *args: torch.Tensor) -> Callable[..., torch.Tensor]:
        """Return what runs inputs shaped like `x`: the net (compiled or not), or its copy lowered for that shape."""
        if not self.dense_convs:
            return self._forward
        shape = tuple(x.shape[1:])
        if shape not in self._lowered:
            lowered, _ = lower_covering_convolutions(self.net, x, *args)
            activations_in_place(lowered)
            self._lowered[shape] = torch.compile(lowered) if self._compile else lowered
        return self._lowered[shape]

    def step_noise(self, keys: torch.Tensor, step: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Return `chain_noise(keys, step, shape)` (fp32), through the compiled noise when `compile` is set.

        The step index goes in as a device tensor, so compiled noise is not recompiled per step;
        it is copied without waiting for the device, so the chain's kernels stay queued.
        """
        return self.noise(keys, torch.tensor(step, dtype=torch.int64).to(keys.device, non_blocking=True), shape)
