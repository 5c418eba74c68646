"""Purification throughput: a bare in-process loop against the Ray Data actor-pool stage, and the
Langevin steps' achieved GFLOP/s against this machine's measured convolution peak, in one run.

    python bench/purify_throughput.py                          # CPU, the default digits EBM (16x16 grey)
    python bench/purify_throughput.py --arch resnet --nf 128 --size 32 --channels 3 --images 256
    python bench/purify_throughput.py --device cuda --arch resnet --nf 128 --size 32 --channels 3 --images 8192

Weights are random (throughput does not depend on training). The last line is one JSON object
with `actor_pool_vs_bare` and `fraction_of_peak` among its keys.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.checkpoints import save_model
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.ebm import EbmPurifier, EbmSettings
from genlab.purify.stage import PurificationStageConfig, run_stage
from genlab.samplers.langevin import LangevinSampler


def peak_conv_gflops(device: torch.device, channels: int, size: int, batch: int, seconds: float = 3.0) -> float:
    """Return the measured GFLOP/s of a dense 3x3 convolution (channels -> channels) on `device`."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
    x = torch.randn(batch, channels, size, size, device=device)
    flops = 2 * channels * channels * 9 * size * size * batch
    with torch.no_grad():
        conv(x)
        _sync(device)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conv(x)
            count += 1
        _sync(device)
    return flops * count / (time.perf_counter() - start) / 1e9


def flops_per_image_step(sampler: LangevinSampler, shape: tuple[int, int, int], device: torch.device) -> float:
    """Return the FLOPs of one Langevin gradient evaluation per image: 2x the counted forward FLOPs.

    The backward pass to the input (weights frozen) costs one transposed convolution per
    convolution, the same FLOPs as the forward one.
    """
    x = torch.zeros(8, *shape, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        sampler.energy(x)
    return 2 * counter.get_total_flops() / 8


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="conv", choices=["conv", "resnet"])
    parser.add_argument("--nf", type=int, default=32)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--actors", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    device = torch.device(args.device)
    torch.set_num_threads(cores)

    net = build_ebm(EbmNetConfig(arch=args.arch, nf=args.nf, channels=args.channels))
    checkpoint = save_model(Path(tempfile.mkdtemp()) / "ebm", net, kind="ebm")
    settings = EbmSettings(langevin_steps=[args.steps], checkpoint=str(checkpoint), batch_size=args.batch_size,
                           device=args.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, args.size, args.size, args.channels), dtype=np.uint8)
    rows = np.arange(args.images)

    purifier = EbmPurifier(settings, seed=0)
    purifier.purify(images[: min(32, args.images)], rows[:32])  # warm-up
    _sync(device)
    start = time.perf_counter()
    bare_out = purifier.purify(images, rows)
    _sync(device)
    bare = args.images / (time.perf_counter() - start)

    ray.init(num_cpus=cores, num_gpus=1 if device.type == "cuda" else 0, include_dashboard=False,
             object_store_memory=500_000_000, log_to_driver=False)
    threads = max(1, cores // args.actors)
    stage = PurificationStageConfig(num_actors=args.actors, num_cpus_per_actor=threads, batch_size=args.batch_size,
                                    num_gpus_per_actor=(1 / args.actors) if device.type == "cuda" else 0)
    run_stage(images[: args.actors * 8], np.zeros(args.actors * 8, dtype=np.int64), rows[: args.actors * 8], settings, 0, stage)
    staged = run_stage(images, np.zeros(args.images, dtype=np.int64), rows, settings, 0, stage)
    same = bool(np.array_equal(staged.by_steps[args.steps], bare_out[args.steps]))

    flops = flops_per_image_step(purifier.sampler, (args.channels, args.size, args.size), device)
    achieved = bare * args.steps * flops / 1e9
    peak = peak_conv_gflops(device, args.nf, args.size, batch=64)
    result = {"device": str(device), "cores": cores, "arch": args.arch, "nf": args.nf, "image_size": args.size,
              "langevin_steps": args.steps, "images": args.images, "bare_images_per_s": round(bare, 2),
              "actor_pool_images_per_s": round(staged.images_per_s, 2), "actors": args.actors, "threads_per_actor": threads,
              "actor_pool_vs_bare": round(staged.images_per_s / bare, 3), "stage_matches_bare": same,
              "image_steps_per_s": round(bare * args.steps, 1), "gflop_per_image_step": round(flops / 1e9, 5),
              "langevin_gflops": round(achieved, 2), "peak_conv_gflops": round(peak, 2),
              "fraction_of_peak": round(achieved / peak, 3)}
    print(f"bare loop      {bare:10.1f} images/s  ({bare * args.steps:.0f} image-steps/s)")
    print(f"Ray actor pool {staged.images_per_s:10.1f} images/s  ({args.actors} actors x {threads} threads); "
          f"ratio {result['actor_pool_vs_bare']}")
    print(f"Langevin       {achieved:10.2f} GFLOP/s vs measured conv peak {peak:.2f} GFLOP/s "
          f"-> {result['fraction_of_peak']:.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
