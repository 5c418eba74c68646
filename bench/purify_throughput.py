"""Purification throughput of the generative purifiers: the official code's loop against the optimised
one, measured in one run on the same images; for the EBM also the Langevin steps' achieved GFLOP/s
against this machine's measured convolution peak and (where Ray is installed) a bare in-process
loop against the Ray Data actor-pool stage.

    python bench/purify_throughput.py                               # CPU, small sizes, every purifier
    python bench/purify_throughput.py --purifier ebm ddpm           # some of them
    python bench/purify_throughput.py --device cuda --purifier ebm ddpm    # H100: the spec's sizes

Sizes (`--scale`, default `paper` on CUDA, `small` on CPU): `paper` is the spec's residual EBM
(SNGAN discriminator trunk, nf=128, 32x32 RGB, T=150) and 32x32 UNet (channels 128, 128, 256,
256, 512, 512, about 114 M parameters, t*=75); `small` is the digits models (conv EBM nf=32 and
the ~71 k-parameter UNet, 16x16 grey, T=20, t*=75). The combinations use the paper's settings:
naive [T, t*, 1], reps Table 10's [10, 50, 5], filt [0, 125, 1] with k=0.5.

Each purifier runs twice on the same images: the reference loop (fp32, eager, batch 128, one
autograd call per Langevin step: how the official code runs) and the optimised loop (bf16
autocast with TF32 for the rest, channels-last, torch.compile, batch 4096 for the EBM and 2048
for the UNet; on CPU without compile unless `--compile`, which costs minutes on few cores). Both
get an untimed warm-up call first (compilation, autotuning). The EBM's achieved GFLOP/s (optimised
loop) is compared with a dense convolution's measured peak; the bare-loop vs actor-pool
comparison runs the `ebm` purifier's defaults on 1024 images. Weights are random: throughput does
not depend on training; the purification statistics (mean absolute change of each loop and the
mean absolute difference between them, pixel units) show the two loops compute the same thing.

Output: one JSON object per purifier, each on its own line, with `vs_reference_loop` and
`images_per_s` (the optimised loop's); the EBM's also has `image_steps_per_s`, `fraction_of_peak`
and, with the actor pool, `actor_pool_vs_bare`. With several purifiers, the last line is one JSON
object holding them all under `purifiers`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from purify_speed import compare_speed_paths, speed_loop
from torch.utils.flop_counter import FlopCounterMode

from genlab.checkpoints import save_model
from genlab.models.ddpm import CHECKPOINT_KIND, PAPER_UNET_32, DdpmNetConfig, build_unet
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.base import PurifierSettings
from genlab.purify.ddpm import DdpmSettings
from genlab.purify.ebm import EBM_KIND, EbmPurifier, EbmSettings
from genlab.purify.puregen import EnergyModelSettings, PuregenFiltSettings, PuregenNaiveSettings, PuregenRepsSettings
from genlab.samplers.langevin import LangevinSampler

PURIFIERS = ("ebm", "ddpm", "puregen-naive", "puregen-reps", "puregen-filt")
SIZES = {  # scale -> (EBM net, UNet, image side, channels, default Langevin steps T)
    "small": (EbmNetConfig(arch="conv", nf=32, channels=1), DdpmNetConfig(), 16, 1, 20),
    "paper": (EbmNetConfig(arch="resnet", nf=128, channels=3), PAPER_UNET_32, 32, 3, 150),
}
DEFAULT_IMAGES = {  # (device type, purifier) -> images per timed call (both loops purify the same ones)
    ("cuda", "ebm"): 8192, ("cuda", "ddpm"): 2048, ("cuda", "puregen-naive"): 2048, ("cuda", "puregen-reps"): 1024,
    ("cuda", "puregen-filt"): 2048,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_conv_gflops(device: torch.device, channels: int, size: int, *, precision: str, channels_last: bool,
                     batch: int = 64, seconds: float = 2.0) -> float:
    """Return the measured GFLOP/s of a dense 3x3 convolution (channels -> channels, `batch` images) on `device`:
    the faster of fp32 and, for a bf16 loop, native bf16 (weights and inputs already bf16, no casts), in the
    loop's memory layout. This is the peak the Langevin steps are compared with."""
    dtypes = [torch.float32, torch.bfloat16] if precision == "bf16" else [torch.float32]
    layout = torch.channels_last if channels_last else torch.contiguous_format
    flops = 2 * channels * channels * 9 * size * size * batch
    rates = []
    for dtype in dtypes:
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, dtype, memory_format=layout)
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=layout)
        with torch.no_grad():
            conv(x)
            _sync(device)
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                conv(x)
                count += 1
            _sync(device)
        rates.append(flops * count / (time.perf_counter() - start) / 1e9)
    return max(rates)


def flops_per_image_step(sampler: LangevinSampler, shape: tuple[int, int, int], device: torch.device) -> float:
    """Return the FLOPs of one Langevin gradient evaluation per image: 2x the counted forward FLOPs.

    The backward pass to the input (weights frozen) costs one transposed convolution per
    convolution, the same FLOPs as the forward one.
    """
    x = torch.zeros(8, *shape, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        sampler.energy(x)
    return 2 * counter.get_total_flops() / 8


def purifier_settings(name: str, models: dict[str, str], langevin_steps: int, t_star: int, device: str) -> PurifierSettings:
    """Return the settings of purifier `name` on the benchmark's model checkpoints (see the module docstring)."""
    ebm = EbmSettings(langevin_steps=[langevin_steps], checkpoint=models[EBM_KIND], device=device)
    ddpm = DdpmSettings(diffusion_start_steps=[t_star], checkpoint=models[CHECKPOINT_KIND], device=device)
    if name == "ebm":
        return ebm
    if name == "ddpm":
        return ddpm
    if name == "puregen-naive":
        return PuregenNaiveSettings(ebm=ebm, ddpm=ddpm)
    if name == "puregen-reps":
        return PuregenRepsSettings(ebm=ebm.model_copy(update={"langevin_steps": [10]}),
                                   ddpm=ddpm.model_copy(update={"diffusion_start_steps": [50]}), reps=5)
    return PuregenFiltSettings(filter_fraction=0.5, energy_model=EnergyModelSettings(checkpoint=models[EBM_KIND], device=device),
                               transform=ddpm.model_copy(update={"diffusion_start_steps": [125]}))


def actor_pool_throughput(settings: EbmSettings, images: np.ndarray, rows: np.ndarray, actors: int,
                          device: torch.device) -> dict[str, Any]:
    """Return images/s of a bare in-process `EbmPurifier` loop and of the Ray Data actor-pool stage, same settings and cores
    (the purifier's defaults: fp32 on CPU, bf16 on CUDA; eager).

    Ray is imported here, not at the top: the GPU image this benchmark targets may lack it, and
    the speed-path figures need none of it.
    """
    import ray

    from genlab.purify.stage import PurificationStageConfig, run_stage

    steps = settings.langevin_steps[0]
    purifier = EbmPurifier(settings, seed=0)
    purifier.purify(images[:32], rows[:32])  # warm-up
    _sync(device)
    start = time.perf_counter()
    bare_out = purifier.purify(images, rows)
    _sync(device)
    bare = len(images) / (time.perf_counter() - start)
    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, num_gpus=1 if device.type == "cuda" else 0, include_dashboard=False,
             object_store_memory=500_000_000, log_to_driver=False)
    threads = max(1, cores // actors)
    stage = PurificationStageConfig(num_actors=actors, num_cpus_per_actor=threads, batch_size=settings.batch_size,
                                    num_gpus_per_actor=(1 / actors) if device.type == "cuda" else 0)
    labels = np.zeros(len(images), dtype=np.int64)
    run_stage(images[: actors * 8], labels[: actors * 8], rows[: actors * 8], settings, 0, stage)  # warm-up
    staged = run_stage(images, labels, rows, settings, 0, stage)
    ray.shutdown()
    return {"bare_images_per_s": round(bare, 2), "actor_pool_images_per_s": round(staged.images_per_s, 2),
            "actors": actors, "threads_per_actor": threads, "actor_pool_vs_bare": round(staged.images_per_s / bare, 3),
            "stage_matches_bare": bool(np.array_equal(staged.by_steps[steps], bare_out[steps]))}


def bench_purifier(name: str, args: argparse.Namespace, models: dict[str, str], device: torch.device) -> dict[str, Any]:
    """Return the figures of one purifier (see the module docstring) as a JSON-ready dict."""
    ebm_config, _, size, channels, _ = SIZES[args.scale]
    count = args.images or DEFAULT_IMAGES.get((device.type, name), 128)
    images = np.random.default_rng(0).integers(0, 256, size=(count, size, size, channels), dtype=np.uint8)
    rows = np.arange(count)
    base = purifier_settings(name, models, args.langevin_steps, args.t_star, args.device)
    overrides = {"compile": args.compile} if args.compile is not None else {"compile": device.type == "cuda"}
    reference, optimized = speed_loop(base, "reference"), speed_loop(base, "optimized", **overrides)
    stats = compare_speed_paths(reference, optimized, images, rows)
    result: dict[str, Any] = {
        "purifier": name, "device": str(device), "scale": args.scale, "image_size": size, "channels": channels,
        "images": count, "label": base.label(), "reference_images_per_s": round(stats["reference_images_per_s"], 2),
        "images_per_s": round(stats["optimized_images_per_s"], 2),
        "vs_reference_loop": round(stats["vs_reference_loop"], 3),
        "reference_mean_abs_change": round(stats["reference_mean_abs_change"], 3),
        "optimized_mean_abs_change": round(stats["optimized_mean_abs_change"], 3),
        "mean_abs_difference": round(stats["mean_abs_difference"], 3), "optimized_compiled": overrides["compile"]}
    if name != "ebm":
        return result
    steps = args.langevin_steps
    sampler = EbmPurifier(optimized.model_copy(update={"compile": False}), seed=0).sampler
    flops = flops_per_image_step(sampler, (channels, size, size), device)
    image_steps = stats["optimized_images_per_s"] * steps
    peak = peak_conv_gflops(device, ebm_config.nf, size, precision=sampler.runner.precision,
                            channels_last=sampler.runner.channels_last)
    result.update({"arch": ebm_config.arch, "nf": ebm_config.nf, "langevin_steps": steps,
                   "reference_image_steps_per_s": round(stats["reference_images_per_s"] * steps, 1),
                   "image_steps_per_s": round(image_steps, 1), "gflop_per_image_step": round(flops / 1e9, 5),
                   "langevin_gflops": round(image_steps * flops / 1e9, 2), "peak_conv_gflops": round(peak, 2),
                   "fraction_of_peak": round(image_steps * flops / 1e9 / peak, 3)})
    if args.actor_pool if args.actor_pool is not None else device.type == "cpu":
        pool_images = np.random.default_rng(1).integers(0, 256, size=(args.pool_images, size, size, channels), dtype=np.uint8)
        actors = args.actors or ((os.cpu_count() or 1) if device.type == "cpu" else 1)
        result.update(actor_pool_throughput(base.model_copy(update={"batch_size": args.pool_batch_size}), pool_images,
                                            np.arange(args.pool_images), actors, device))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--purifier", nargs="+", default=["all"], choices=[*PURIFIERS, "all"])
    parser.add_argument("--scale", choices=sorted(SIZES), help="model sizes (default: paper on cuda, small on cpu)")
    parser.add_argument("--images", type=int, help="images per timed call (default: 128 on cpu, per purifier on cuda)")
    parser.add_argument("--langevin-steps", type=int, help="T of the EBM and naive (default: 150 paper, 20 small)")
    parser.add_argument("--t-star", type=int, default=75, help="t* of ddpm and naive")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="compile in the optimised loop (default: on cuda)")
    parser.add_argument("--actor-pool", action=argparse.BooleanOptionalAction, help="EBM bare loop vs Ray actor pool (default: on cpu)")
    parser.add_argument("--actors", type=int, help="actor-pool actors (default: one per core on cpu, 1 on cuda)")
    parser.add_argument("--pool-images", type=int, default=1024, help="images of the bare-loop vs actor-pool comparison")
    parser.add_argument("--pool-batch-size", type=int, default=256, help="batch size of the bare-loop vs actor-pool comparison")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.scale = args.scale or ("paper" if device.type == "cuda" else "small")
    ebm_config, unet_config, _, _, default_steps = SIZES[args.scale]
    args.langevin_steps = args.langevin_steps or default_steps
    torch.set_num_threads(os.cpu_count() or 1)
    names = list(PURIFIERS) if "all" in args.purifier else list(dict.fromkeys(args.purifier))
    root = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    models = {EBM_KIND: str(save_model(root / "ebm", build_ebm(ebm_config), kind=EBM_KIND)),
              CHECKPOINT_KIND: str(save_model(root / "ddpm", build_unet(unet_config), kind=CHECKPOINT_KIND))}
    results = {}
    for name in names:
        results[name] = bench_purifier(name, args, models, device)
        r = results[name]
        print(f"{name:14s} reference {r['reference_images_per_s']:9.1f} images/s, optimised {r['images_per_s']:9.1f} "
              f"images/s -> vs_reference_loop {r['vs_reference_loop']}", flush=True)
        print(json.dumps(r), flush=True)
    if len(results) > 1:
        print(json.dumps({"device": str(device), "scale": args.scale, "purifiers": results}))


if __name__ == "__main__":
    main()
