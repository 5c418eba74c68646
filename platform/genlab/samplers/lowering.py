"""Convolutions whose kernel covers their whole input, run as one dense matrix product.

Late layers of a downsampling network see tiny feature maps: the small EBM's fourth convolution
takes 128 x 4 x 4 to 256 x 2 x 2 with a 4 x 4 kernel. oneDNN's direct convolution is slow on
such shapes (about 150 GFLOP/s where a matrix product of the same size reaches 340 on a 2-core
Xeon). A convolution is a linear map of its input, so it equals `x.flatten(1) @ M + b` for one
matrix M, which `DenseConv2d` builds by convolving the basis images. When the kernel's area is at
least the input's (kh * kw >= H * W) the product does no more multiply-adds than the
convolution's nominal count, so nothing is wasted; `lower_covering_convolutions` swaps exactly
those layers. The result equals the convolution up to float rounding; gradients to the input
flow through the product (its transpose), so a Langevin step runs two GEMMs there.

`activations_in_place` is the other rewrite of that per-shape copy: a ReLU or LeakyReLU that
directly follows a convolution or product in an `nn.Sequential` overwrites that layer's output
instead of writing a new tensor (1.1x on the small EBM's Langevin gradient: its activations are
the largest tensors of a step). Autograd allows it: their backward reads their own output, and
the layer before needs only its input and weights for its backward.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class DenseConv2d(nn.Module):
    """A frozen `nn.Conv2d` on inputs of one shape [C, H, W], as `x.flatten(1) @ matrix + bias` (same output).

    With `channels_last_input` the matrix's rows follow the NHWC order, so a channels-last input
    is flattened without a copy (any input still gives the right result; a mismatched one is copied).
    """

    def __init__(self, conv: nn.Conv2d, in_shape: tuple[int, int, int], *, channels_last_input: bool = False) -> None:
        super().__init__()
        channels, height, width = in_shape
        size = channels * height * width
        with torch.no_grad():
            basis = torch.eye(size, dtype=conv.weight.dtype, device=conv.weight.device)
            if channels_last_input:  # basis row i is the image whose i-th pixel in NHWC order is 1
                basis = basis.view(size, height, width, channels).permute(0, 3, 1, 2)
            columns = conv._conv_forward(basis.reshape(size, *in_shape), conv.weight, None)  # conv is linear in x
        self.channels_last_input = channels_last_input
        self.out_shape = tuple(columns.shape[1:])
        self.register_buffer("matrix", columns.reshape(size, -1).contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(self.out_shape[0], device=conv.weight.device)
        self.register_buffer("bias", bias.repeat_interleave(self.out_shape[1] * self.out_shape[2]).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the convolution of `x` [N, C, H, W] (any memory format) as a contiguous [N, C_out, H_out, W_out]."""
        flat = x.permute(0, 2, 3, 1).reshape(len(x), -1) if self.channels_last_input else x.reshape(len(x), -1)
        return torch.addmm(self.bias, flat, self.matrix).view(len(x), *self.out_shape)


def activations_in_place(net: nn.Module) -> int:
    """Make every `nn.ReLU` / `nn.LeakyReLU` (positive slope) that directly follows an `nn.Conv2d`, `DenseConv2d`
    or `nn.Linear` inside an `nn.Sequential` of `net` run in place; return how many were switched. Outputs,
    input gradients and parameter gradients are unchanged (see the module docstring)."""
    switched = 0
    for sequence in (module for module in net.modules() if isinstance(module, nn.Sequential)):
        for before, activation in zip(sequence, list(sequence)[1:]):
            follows_a_layer = isinstance(before, (nn.Conv2d, DenseConv2d, nn.Linear))
            safe = isinstance(activation, nn.ReLU) or (isinstance(activation, nn.LeakyReLU)
                                                        and activation.negative_slope > 0)
            if follows_a_layer and safe and not activation.inplace:
                activation.inplace = True
                switched += 1
    return switched


def _covers_its_input(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> bool:
    """Return whether the dense product of `conv` on [C, H, W] inputs costs no more multiply-adds than the
    convolution (kernel area >= input area; ungrouped, undilated)."""
    kernel_h, kernel_w = conv.kernel_size
    return conv.groups == 1 and conv.dilation == (1, 1) and kernel_h * kernel_w >= in_shape[1] * in_shape[2]


def lower_covering_convolutions(net: nn.Module, *example: torch.Tensor) -> tuple[nn.Module, int]:
    """Return (a copy of `net` with every convolution that covers its input, for inputs shaped like `example`,
    replaced by its `DenseConv2d`; the number replaced). `net` itself is unchanged; the copy only accepts that
    input shape at the replaced layers, so callers keep one copy per shape."""
    lowered = copy.deepcopy(net)
    shapes: dict[str, set[tuple[tuple[int, ...], bool]]] = {}  # layer -> (input shape, channels-last?) seen

    def record(name: str, x: torch.Tensor) -> None:
        is_channels_last = x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last)
        shapes.setdefault(name, set()).add((tuple(x.shape[1:]), is_channels_last))

    hooks = [module.register_forward_pre_hook(lambda _m, args, name=name: record(name, args[0]))
             for name, module in lowered.named_modules() if isinstance(module, nn.Conv2d)]
    try:
        with torch.no_grad():
            lowered(*(tensor[:1] for tensor in example))
    finally:
        for hook in hooks:
            hook.remove()
    replaced = 0
    for name, seen in shapes.items():
        conv, (in_shape, is_channels_last) = lowered.get_submodule(name), next(iter(seen))
        if len(seen) == 1 and _covers_its_input(conv, in_shape):  # a layer called on several shapes stays a conv
            parent, _, leaf = name.rpartition(".")
            setattr(lowered.get_submodule(parent), leaf, DenseConv2d(conv, in_shape, channels_last_input=is_channels_last))
            replaced += 1
    return lowered, replaced
