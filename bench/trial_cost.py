"""Cost of one classifier-training epoch in a sweep trial: the official code's loop against genlab's, one run.

- reference: as the papers' code trains ResNet-18 (CIFAR stem): fp32, eager, batch 128, a CPU
  `DataLoader` applying torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip per image.
- genlab: `genlab.train.classifier.train_classifier` with the training set and its augmentation on
  the device, bf16 autocast, channels-last, torch.compile (CUDA; on CPU only with `--compile`),
  batch 512.

Both train the same architecture from the same seed on the same images (generated 32x32 RGB
`shapes`, whose content does not change the cost) for `--epochs` epochs after an untimed warm-up
epoch (compilation, autotuning); the time is whole epochs, data included. `--protocol hlb` also
times one epoch of the fast HLB-like protocol (genlab.train.protocols). With `--accuracy` both
loops train `--epochs` epochs on a train split and report natural accuracy on a held-out split.

    python bench/trial_cost.py                       # CPU: 1,024 images, ResNet-18
    python bench/trial_cost.py --device cuda         # H100: 50,000 images (the issue's setting)

Last line: one JSON object with `vs_reference_loop` (reference / genlab epoch time),
`reference_epoch_s`, `fast_epoch_s`, the device and sizes, and the optional HLB and accuracy figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from genlab.data.convert import PIXEL, to_tensor
from genlab.data.shapes import generate_shapes
from genlab.models.classifiers import NormalizedClassifier, build_classifier
from genlab.runtime import resolve_device
from genlab.train.classifier import ClassifierConfig, predict, train_classifier


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_loop(images: np.ndarray, labels: np.ndarray, epochs: int, device: torch.device,
                   seed: int) -> tuple[NormalizedClassifier, float]:
    """Train ResNet-18 the official way for `epochs` (after one warm-up epoch); return (model, seconds per epoch)."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    augment = transforms.Compose([transforms.ToPILImage(), transforms.RandomCrop(32, padding=4),
                                  transforms.RandomHorizontalFlip(), transforms.PILToTensor()])

    class Images(Dataset):
        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int):
            return augment(images[i]).float(), int(labels[i])

    torch.manual_seed(seed)
    data = to_tensor(images, PIXEL)
    mean, std = data.mean(dim=(0, 2, 3)) / 255, (data / 255).std(dim=(0, 2, 3))
    model = NormalizedClassifier(build_classifier("resnet18", in_channels=3, num_classes=10), mean, std).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(Images(), batch_size=128, shuffle=True, num_workers=2 if device.type == "cuda" else 0)
    times = []
    for epoch in range(epochs + 1):
        _sync(device)
        start = time.perf_counter()
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _sync(device)
        if epoch:  # epoch 0 is the warm-up
            times.append(time.perf_counter() - start)
    return model.eval(), float(np.mean(times))


def fast_loop(images: np.ndarray, labels: np.ndarray, cfg: ClassifierConfig, epochs: int, device: torch.device,
              seed: int) -> tuple[NormalizedClassifier, float]:
    """Train with genlab's loop for 1 warm-up + `epochs` epochs; return (model, seconds per timed epoch)."""
    stamps: list[float] = []
    _sync(device)
    stamps.append(time.perf_counter())

    def on_epoch(epoch: int, loss: float, model: torch.nn.Module) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    model = train_classifier(images, labels, 10, cfg.model_copy(update={"epochs": epochs + 1}), seed=seed,
                             on_epoch=on_epoch)
    return model, float(np.mean(np.diff(stamps)[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--images", type=int, default=None, help="training images (default 50,000 on CUDA, 1,024 on CPU)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs after the warm-up epoch")
    parser.add_argument("--compile", action="store_true", help="torch.compile on CPU too (minutes on few cores)")
    parser.add_argument("--protocol", choices=["standard", "hlb"], default="standard", help="hlb: also time one HLB epoch")
    parser.add_argument("--accuracy", action="store_true", help="train on 80%% of the images, report held-out accuracy")
    args = parser.parse_args()
    device = resolve_device(args.device)
    count = args.images or (50_000 if device.type == "cuda" else 1_024)
    images, labels, _ = generate_shapes(samples_per_class=-(-count // 10), size=32, seed=0)
    order = np.random.default_rng(0).permutation(len(images))[:count]
    images, labels = images[order], labels[order]
    train_rows = slice(0, int(0.8 * count)) if args.accuracy else slice(0, count)
    fast_cfg = ClassifierConfig(arch="resnet18", batch_size=512, lr=0.2, augment=True, device=str(device),
                                precision="bf16", channels_last=True, compile=device.type == "cuda" or args.compile)
    print(f"{count} images 32x32x3 on {device}; ResNet-18, {args.epochs} timed epoch(s) after one warm-up", flush=True)
    reference, reference_s = reference_loop(images[train_rows], labels[train_rows], args.epochs, device, seed=0)
    print(f"reference loop (fp32, eager, batch 128, CPU DataLoader): {reference_s:.2f} s/epoch", flush=True)
    fast, fast_s = fast_loop(images[train_rows], labels[train_rows], fast_cfg, args.epochs, device, seed=0)
    print(f"genlab loop (on-device data, bf16, channels-last, compile={fast_cfg.compile}, batch 512): "
          f"{fast_s:.2f} s/epoch", flush=True)
    result = {"vs_reference_loop": round(reference_s / fast_s, 2), "reference_epoch_s": round(reference_s, 3),
              "fast_epoch_s": round(fast_s, 3), "device": str(device), "images": len(images[train_rows]),
              "compile": fast_cfg.compile}
    if args.protocol == "hlb":
        hlb_cfg = ClassifierConfig(protocol="hlb", device=str(device), precision="bf16", channels_last=True,
                                   compile=fast_cfg.compile)
        _, result["hlb_epoch_s"] = fast_loop(images[train_rows], labels[train_rows], hlb_cfg, 1, device, seed=0)
    if args.accuracy:
        held_out = slice(int(0.8 * count), count)
        for name, model in (("reference", reference), ("fast", fast)):
            result[f"{name}_natural_accuracy"] = float(np.mean(predict(model, images[held_out]) == labels[held_out]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
