"""The purifiers' fast path per device: what `auto` resolves to, that a CPU never runs bf16 autocast, and that the
purifier reports the path it ran."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from purify_speed import compare_speed_paths, speed_loop

from genlab.checkpoints import save_model
from genlab.models.ddpm import DdpmNetConfig, build_unet
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify import build_purifier
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EbmSettings
from genlab.purify.puregen import EnergyModelSettings, PuregenFiltSettings, PuregenNaiveSettings, PuregenRepsSettings
from genlab.samplers.lowering import activations_in_place, lower_covering_convolutions
from genlab.samplers.speed import SpeedPath, cpu_batch_size

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object needs no GPU


@pytest.mark.parametrize(("settings_cls", "digits_batch", "cifar_batch", "cuda_batch"),
                         [(EbmSettings, 256, 16, 4096), (DdpmSettings, 512, 128, 2048)])
def test_auto_resolves_to_fp32_channels_last_eager_on_cpu_and_to_the_bf16_compiled_recipe_on_cuda(
        settings_cls, digits_batch, cifar_batch, cuda_batch):
    settings = settings_cls()
    assert settings.speed_path(CPU, (16, 16, 1)) == SpeedPath("cpu", "fp32", True, True, False, digits_batch)
    assert settings.speed_path(CPU, (128, 32, 32, 3)) == SpeedPath("cpu", "fp32", True, True, False, cifar_batch)
    assert settings.speed_path(CUDA, (32, 32, 3)) == SpeedPath("cuda", "bf16", True, False, True, cuda_batch)
    chosen = settings.model_copy(update={"precision": "fp32", "channels_last": False, "batch_size": 128})
    assert chosen.speed_path(CUDA, (32, 32, 3)) == SpeedPath("cuda", "fp32", False, False, True, 128)  # set fields win


def test_the_cpu_batch_holds_a_fixed_pixel_budget_within_bounds():
    assert [cpu_batch_size(65536, side * side) for side in (8, 16, 32, 64, 224)] == [1024, 256, 64, 16, 16]
    assert cpu_batch_size(65536, 24 * 24) == 64  # rounded down to a power of two


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("nets")
    torch.manual_seed(0)
    unet = DdpmNetConfig(block_out_channels=[8, 8], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                         up_block_types=["AttnUpBlock2D", "UpBlock2D"], norm_num_groups=4)
    return {"ebm": str(save_model(root / "ebm", build_ebm(EbmNetConfig(nf=4)), kind="ebm")),
            "ddpm": str(save_model(root / "ddpm", build_unet(unet), kind="ddpm"))}


def _generative_settings(checkpoints: dict[str, str]) -> dict[str, object]:
    """Every generative purifier with its default (auto) speed fields, small step counts, on the CPU."""
    ebm = EbmSettings(langevin_steps=[3], checkpoint=checkpoints["ebm"], device="cpu")
    ddpm = DdpmSettings(diffusion_start_steps=[3], checkpoint=checkpoints["ddpm"], device="cpu")
    return {"ebm": ebm, "ddpm": ddpm, "puregen-naive": PuregenNaiveSettings(ebm=ebm, ddpm=ddpm),
            "puregen-reps": PuregenRepsSettings(ebm=ebm, ddpm=ddpm, reps=2),
            "puregen-filt": PuregenFiltSettings(energy_model=EnergyModelSettings(checkpoint=checkpoints["ebm"],
                                                                                 device="cpu"), transform=ddpm)}


@pytest.mark.parametrize("name", ["ebm", "ddpm", "puregen-naive", "puregen-reps", "puregen-filt"])
def test_on_a_cpu_the_purifiers_never_run_bf16_autocast(name, checkpoints, digits):
    purifier = build_purifier(_generative_settings(checkpoints)[name], seed=0)
    seen: list[tuple[bool, torch.dtype]] = []

    def record(module: torch.nn.Module, args: tuple) -> None:
        seen.extend((torch.is_autocast_enabled("cpu"), arg.dtype) for arg in args
                    if isinstance(arg, torch.Tensor) and arg.is_floating_point())

    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)  # every module of every network
    try:
        images = digits[0].images[:12]
        out = purifier.purify(images, np.arange(12))
    finally:
        hook.remove()
    assert seen and all(out[t].shape == images.shape for t in out)
    assert {autocast for autocast, _ in seen} == {False} and {dtype for _, dtype in seen} == {torch.float32}
    reported = purifier.speed_params(images.shape)
    dtypes = [value for key, value in reported.items() if key.endswith("dtype")]
    assert dtypes and set(dtypes) == {"fp32"}, reported  # and the path it reports says so
    assert {value for key, value in reported.items() if key.endswith("memory_format")} == {"channels_last"}
    assert {value for key, value in reported.items() if key.endswith("batch_size")} == {"12"}  # the batch it ran


def test_covering_convolutions_become_dense_products_with_the_same_values_and_input_gradients():
    torch.manual_seed(0)
    net = build_ebm(EbmNetConfig(nf=8)).eval().requires_grad_(False)
    x = torch.rand(16, 1, 16, 16) * 2 - 1
    lowered, replaced = lower_covering_convolutions(net, x)
    kinds = [type(layer).__name__ for layer in lowered.layers]
    assert replaced == 2 and kinds.count("DenseConv2d") == 2 and kinds[-1] == "DenseConv2d"  # 4x4 kernel on 4x4, 3x3 on 2x2
    assert all(isinstance(layer, torch.nn.Conv2d) for layer in net.layers[::2])  # the original is untouched

    (energy, gradient), (dense_energy, dense_gradient) = (_energy_and_gradients(model, x) for model in (net, lowered))
    assert torch.allclose(dense_energy, energy, rtol=1e-5, atol=1e-7)
    assert (dense_gradient - gradient).norm() < 1e-2 * gradient.norm()  # rounding (a LeakyReLU kink may flip)
    assert [lower_covering_convolutions(net, torch.rand(2, 1, side, side))[1] for side in (8, 32)] == [3, 0]


def test_activations_after_a_layer_run_in_place_with_the_same_energies_and_input_gradients():
    torch.manual_seed(0)
    net = build_ebm(EbmNetConfig(nf=8)).eval()
    x = torch.rand(16, 1, 16, 16) * 2 - 1
    in_place = lower_covering_convolutions(net, x)[0]
    assert activations_in_place(in_place) == 4 and activations_in_place(in_place) == 0  # the 4 LeakyReLUs, once
    assert not any(layer.inplace for layer in net.layers if isinstance(layer, torch.nn.LeakyReLU))  # original untouched
    reference = lower_covering_convolutions(net, x)[0]
    (energy, gradient, weight_grad), (fast_energy, fast_gradient, fast_weight_grad) = (
        _energy_and_gradients(model, x, model.layers[0].weight) for model in (reference, in_place))
    assert torch.equal(fast_energy, energy) and torch.equal(fast_gradient, gradient)
    assert torch.equal(fast_weight_grad, weight_grad)  # training through the copy would be unchanged too
    unsafe = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.LeakyReLU(-0.5), torch.nn.Tanh(), torch.nn.ReLU())
    assert activations_in_place(unsafe) == 0  # a negative slope, or after a Tanh (whose backward reads its output)


def _energy_and_gradients(model: torch.nn.Module, x: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Return (energies, d sum energy / d x, then d sum energy / d each of `params`) of `model` at `x`."""
    inputs = x.clone().requires_grad_(True)
    energy = model(inputs)
    return energy.detach(), *torch.autograd.grad(energy.sum(), (inputs, *params))


@pytest.mark.parametrize("name", ["ebm", "ddpm"])
def test_the_cpu_fast_path_purifies_as_the_reference_loop_does(name, checkpoints, digits):
    settings = _generative_settings(checkpoints)[name]
    images, rows = digits[0].images[:64], np.arange(64)
    stats = compare_speed_paths(speed_loop(settings, "reference"), speed_loop(settings, "optimized"), images, rows)
    change = stats["reference_mean_abs_change"]
    assert change > 0.5 and abs(stats["optimized_mean_abs_change"] - change) < 0.01 * change
    assert stats["mean_abs_difference"] < 0.02 * change
