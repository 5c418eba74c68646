"""Purification throughput of the generative purifiers: the official code's loop against genlab's fast path (what
the sweep runs), measured in one run on the same images; for the EBM also the Langevin steps' achieved GFLOP/s
against this machine's measured convolution peak, the paper-size EBM on a CPU, and (where Ray is installed) the
bare in-process loop against the Ray Data actor-pool stage.

    python bench/purify_throughput.py                               # CPU, small sizes, every purifier
    python bench/purify_throughput.py --purifier ebm ddpm           # some of them
    python bench/purify_throughput.py --device cuda --purifier ebm ddpm    # H100: the spec's sizes

Sizes (`--scale`, default `paper` on CUDA, `small` on CPU): `paper` is the spec's residual EBM
(SNGAN discriminator trunk, nf=128, 32x32 RGB, T=150) and 32x32 UNet (channels 128, 128, 256,
256, 512, 512, about 114 M parameters, t*=75); `small` is the digits models (conv EBM nf=32 and
the ~71 k-parameter UNet, 16x16 grey, T=20, t*=75). The combinations use the paper's settings:
naive [T, t*, 1], reps Table 10's [10, 50, 5], filt [0, 125, 1] with k=0.5. At `small` scale the
paper-size EBM is measured too (`ebm-paper`: T=`--paper-steps`, 64 images), with its own peak.

Each purifier runs twice on the same images: the reference loop (fp32, eager, NCHW, batch 128,
one autograd call per Langevin step: how the official code runs) and the fast path, every speed
field `auto` (`genlab.samplers.speed.device_fast_path`: on a CPU fp32, channels-last, dense
covering convolutions and in-place activations, eager, a batch of 64 Ki pixel values for the EBM
and 128 Ki pixels per channel for the UNet; on CUDA bf16 autocast, channels-last, compiled, batch
4096 / 2048). `--compile` / `--no-compile` overrides the compile choice. Both get
an untimed warm-up call first (compilation, oneDNN primitives), then `--repeats` timed calls, of which
the fastest counts (the machine's other work only ever slows a call down). Weights are random: throughput
does not depend on training; the purification statistics (mean absolute change of each loop and
the mean absolute difference between them, pixel units) show the two loops compute the same.

Peak: the best GFLOP/s of a dense 3x3 convolution nf -> nf on the EBM's image size, over both
memory layouts and batch 64 / 256 (and native bf16 where the fast path is bf16): the EBM's
fraction of peak is its Langevin GFLOP/s (2x the forward FLOPs per image-step) over that.

Actor pool (CPU default): the EBM's fast path on `--pool-images` images at the extended sweep's
chain (T=200, snapshots 150 and 200) in one process of all the cores' threads, against the Ray
Data stage on the same cores: one actor per core with one thread each, `--pool-batch-size` rows
per call (one actor of two threads ran at 0.75 of the bare loop: its OpenMP threads stall whenever
Ray's own processes take a core; two single-threaded actors together run at about 0.94 of the
2-thread loop in steady state, as two plain processes do). Ray Data's own start-up, once per Ray session (its
stats and autoscaling actors, 1.5 s here), is warmed up with a one-row dataset first, as the
bare loop gets its warm-up call: a sweep's Ray session pays it once, not per stage. Each stage
run still pays its actor pool's start (actor processes importing torch and genlab, about 1.6 s,
the models shipped and Ray Data's planning), which the bare loop does not: `stage_overhead_s`
reports it (stage wall time minus bare wall time), and the ratio nears the steady-state one as
the workload grows.

Output: one JSON object per purifier, each on its own line, with `vs_reference_loop`,
`images_per_s` (the fast path's) and `speed_path` (what `auto` resolved to); the EBM's also has
`image_steps_per_s`, `fraction_of_peak` and, with the actor pool, `actor_pool_vs_bare`. With
several purifiers, the last line is one JSON object holding them all under `purifiers`.
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
from genlab.purify import build_purifier
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
    ("cuda", "puregen-filt"): 2048, ("cpu", "ebm"): 512, ("cpu", "ebm-paper"): 64, ("cpu", "ddpm"): 512,
    ("cpu", "puregen-naive"): 256, ("cpu", "puregen-reps"): 256, ("cpu", "puregen-filt"): 512,
}
SWEEP_CHAIN = [150, 200]  # the extended sweep's EBM setting (conf/defense_sweep_extended.yaml): one chain, two snapshots


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_conv_gflops(device: torch.device, channels: int, size: int, *, precision: str, seconds: float = 1.0) -> float:
    """Return the best measured GFLOP/s of a dense 3x3 convolution (channels -> channels, size x size images) on
    `device`, over both memory layouts and batches 64 and 256, in fp32 and, for a bf16 loop, native bf16 (weights and
    inputs already bf16, no casts). This is the peak the Langevin steps are compared with."""
    dtypes = [torch.float32, torch.bfloat16] if precision == "bf16" else [torch.float32]
    rates = []
    for dtype in dtypes:
        for layout in (torch.contiguous_format, torch.channels_last):
            for batch in (64, 256):
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
                rates.append(2 * channels * channels * 9 * size * size * batch * count / (time.perf_counter() - start) / 1e9)
    return max(rates)


def flops_per_image_step(sampler: LangevinSampler, shape: tuple[int, int, int], device: torch.device) -> float:
    """Return the FLOPs of one Langevin gradient evaluation per image: 2x the counted forward FLOPs of the convolutional
    net (before any dense lowering, which keeps the count).

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
    if name == "ebm-paper":
        return ebm.model_copy(update={"checkpoint": models["ebm-paper"]})
    if name == "ddpm":
        return ddpm
    if name == "puregen-naive":
        return PuregenNaiveSettings(ebm=ebm, ddpm=ddpm)
    if name == "puregen-reps":
        return PuregenRepsSettings(ebm=ebm.model_copy(update={"langevin_steps": [10]}),
                                   ddpm=ddpm.model_copy(update={"diffusion_start_steps": [50]}), reps=5)
    return PuregenFiltSettings(filter_fraction=0.5, energy_model=EnergyModelSettings(checkpoint=models[EBM_KIND], device=device),
                               transform=ddpm.model_copy(update={"diffusion_start_steps": [125]}))


def actor_pool_throughput(settings: EbmSettings, images: np.ndarray, rows: np.ndarray, stage_batch: int,
                          device: torch.device) -> dict[str, Any]:
    """Return images/s of a bare in-process `EbmPurifier` loop and of the Ray Data actor-pool stage on the same cores
    and settings (module docstring: one single-threaded actor per core on a CPU, one actor on the GPU).

    Ray is imported here, not at the top: the GPU image this benchmark targets may lack it, and
    the speed-path figures need none of it.
    """
    import ray

    from genlab.purify.stage import PurificationStageConfig, run_stage

    cores = os.cpu_count() or 1
    purifier = EbmPurifier(settings, seed=0)
    purifier.purify(images[:32], rows[:32])  # warm-up
    _sync(device)
    start = time.perf_counter()
    bare_out = purifier.purify(images, rows)
    _sync(device)
    bare_s = time.perf_counter() - start
    ray.init(num_cpus=cores, num_gpus=1 if device.type == "cuda" else 0, include_dashboard=False,
             object_store_memory=500_000_000, log_to_driver=False)
    ray.data.range(1).map_batches(lambda batch: batch).materialize()  # Ray Data's once-per-session start (docstring)
    actors = cores if device.type == "cpu" else 1
    threads = 1 if device.type == "cpu" else cores
    stage = PurificationStageConfig(num_actors=actors, num_cpus_per_actor=threads, batch_size=stage_batch,
                                    num_gpus_per_actor=1 if device.type == "cuda" else 0)
    staged = run_stage(images, np.zeros(len(images), dtype=np.int64), rows, settings, 0, stage)
    ray.shutdown()
    bare = len(images) / bare_s
    return {"pool_images": len(images), "pool_langevin_steps": settings.langevin_steps,
            "bare_images_per_s": round(bare, 2), "actor_pool_images_per_s": round(staged.images_per_s, 2),
            "actors": actors, "threads_per_actor": threads, "stage_batch_size": stage_batch,
            "actor_pool_vs_bare": round(staged.images_per_s / bare, 3),
            "stage_overhead_s": round(len(images) / staged.images_per_s - bare_s, 2),
            "stage_max_abs_difference": max(int(np.abs(staged.by_steps[t].astype(int) - bare_out[t]).max()) for t in bare_out)}


def bench_purifier(name: str, args: argparse.Namespace, models: dict[str, str], device: torch.device) -> dict[str, Any]:
    """Return the figures of one purifier (see the module docstring) as a JSON-ready dict."""
    scale = "paper" if name == "ebm-paper" else args.scale
    ebm_config, _, size, channels, _ = SIZES[scale]
    steps = args.paper_steps if name == "ebm-paper" else args.langevin_steps
    count = args.images or DEFAULT_IMAGES.get((device.type, name), 128)
    images = np.random.default_rng(0).integers(0, 256, size=(count, size, size, channels), dtype=np.uint8)
    rows = np.arange(count)
    base = purifier_settings(name, models, steps, args.t_star, args.device)
    overrides = {"compile": args.compile} if args.compile is not None else {}
    reference, optimized = speed_loop(base, "reference"), speed_loop(base, "optimized", **overrides)
    stats = compare_speed_paths(reference, optimized, images, rows, repeats=args.repeats)
    result: dict[str, Any] = {
        "purifier": name, "device": str(device), "scale": scale, "image_size": size, "channels": channels,
        "images": count, "label": base.label(), "reference_images_per_s": round(stats["reference_images_per_s"], 2),
        "images_per_s": round(stats["optimized_images_per_s"], 2),
        "vs_reference_loop": round(stats["vs_reference_loop"], 3),
        "reference_mean_abs_change": round(stats["reference_mean_abs_change"], 3),
        "optimized_mean_abs_change": round(stats["optimized_mean_abs_change"], 3),
        "mean_abs_difference": round(stats["mean_abs_difference"], 3),
        "speed_path": build_purifier(optimized, seed=0).speed_params(images.shape)}
    if not name.startswith("ebm"):
        return result
    sampler = EbmPurifier(reference, seed=0).sampler  # the convolutional net, for the FLOP count
    flops = flops_per_image_step(sampler, (channels, size, size), device)
    image_steps = stats["optimized_images_per_s"] * steps
    peak = peak_conv_gflops(device, ebm_config.nf, size, precision=result["speed_path"]["dtype"])
    result.update({"arch": ebm_config.arch, "nf": ebm_config.nf, "langevin_steps": steps,
                   "reference_image_steps_per_s": round(stats["reference_images_per_s"] * steps, 1),
                   "image_steps_per_s": round(image_steps, 1), "gflop_per_image_step": round(flops / 1e9, 5),
                   "langevin_gflops": round(image_steps * flops / 1e9, 2), "peak_conv_gflops": round(peak, 2),
                   "fraction_of_peak": round(image_steps * flops / 1e9 / peak, 3),
                   "reference_fraction_of_peak": round(stats["reference_images_per_s"] * steps * flops / 1e9 / peak, 3)})
    if name == "ebm" and (args.actor_pool if args.actor_pool is not None else device.type == "cpu"):
        pool_images = np.random.default_rng(1).integers(0, 256, size=(args.pool_images, size, size, channels), dtype=np.uint8)
        result.update(actor_pool_throughput(optimized.model_copy(update={"langevin_steps": SWEEP_CHAIN}), pool_images,
                                            np.arange(args.pool_images), args.pool_batch_size, device))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--purifier", nargs="+", default=["all"], choices=[*PURIFIERS, "ebm-paper", "all"])
    parser.add_argument("--scale", choices=sorted(SIZES), help="model sizes (default: paper on cuda, small on cpu)")
    parser.add_argument("--images", type=int, help="images per timed call (default: per device and purifier)")
    parser.add_argument("--langevin-steps", type=int, help="T of the EBM and naive (default: 150 paper, 20 small)")
    parser.add_argument("--paper-steps", type=int, default=3, help="T of the paper-size EBM at small scale (ebm-paper)")
    parser.add_argument("--t-star", type=int, default=75, help="t* of ddpm and naive")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per loop; the fastest counts")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="override the fast path's compile choice")
    parser.add_argument("--actor-pool", action=argparse.BooleanOptionalAction, help="EBM bare loop vs Ray actor pool (default: on cpu)")
    parser.add_argument("--pool-images", type=int, default=2048, help="images of the bare-loop vs actor-pool comparison")
    parser.add_argument("--pool-batch-size", type=int, default=128, help="rows per actor call in the actor-pool comparison")
    args = parser.parse_args()
    device = torch.device(args.device)
    args.scale = args.scale or ("paper" if device.type == "cuda" else "small")
    ebm_config, unet_config, _, _, default_steps = SIZES[args.scale]
    args.langevin_steps = args.langevin_steps or default_steps
    torch.set_num_threads(os.cpu_count() or 1)
    names = list(PURIFIERS) if "all" in args.purifier else list(dict.fromkeys(args.purifier))
    if "all" in args.purifier and args.scale == "small":
        names.insert(1, "ebm-paper")
    root = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    models = {EBM_KIND: str(save_model(root / "ebm", build_ebm(ebm_config), kind=EBM_KIND)),
              CHECKPOINT_KIND: str(save_model(root / "ddpm", build_unet(unet_config), kind=CHECKPOINT_KIND))}
    if "ebm-paper" in names:
        models["ebm-paper"] = str(save_model(root / "ebm-paper", build_ebm(SIZES["paper"][0]), kind=EBM_KIND))
    results = {}
    for name in names:
        results[name] = bench_purifier(name, args, models, device)
        r = results[name]
        print(f"{name:14s} reference {r['reference_images_per_s']:9.1f} images/s, fast path {r['images_per_s']:9.1f} "
              f"images/s -> vs_reference_loop {r['vs_reference_loop']}", flush=True)
        print(json.dumps(r), flush=True)
    if len(results) > 1:
        print(json.dumps({"device": str(device), "scale": args.scale, "purifiers": results}))


if __name__ == "__main__":
    main()
