"""Datasets as (train, test) `ImageSet` pairs, chosen by `DatasetConfig.name`.

Embedded (no files needed): `digits` (scikit-learn's 1,797 real 8x8 handwritten digits,
resized) and `shapes` (generated RGB shapes, 10 classes, deterministic by seed). Real
loaders: `cifar10` (torchvision), `cinic10` and `tinyimagenet` (ImageFolder layouts); when
their files are absent a `DatasetMissingError` says where to put them. `cinic10` keeps the
part `cinic_part` names: `imagenet` (the ~70k ImageNet images PureGen trains its generative
models on, spec puregen.md §2.2: every file whose name does not start with `cifar10-`),
`cifar10` (the CIFAR-10 images it holds) or `all`; `download` fetches it from Edinburgh DataShare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from genlab.config import StrictModel
from genlab.data.imageset import ImageSet
from genlab.data.shapes import generate_shapes
from genlab.errors import DatasetMissingError


class DatasetConfig(StrictModel):
    """Which dataset to load and how."""

    name: Literal["digits", "shapes", "cifar10", "cinic10", "tinyimagenet"] = "digits"  # dataset
    root: str = "data"  # directory holding the real datasets' files
    download: bool = False  # let torchvision download CIFAR-10 / CINIC-10 into `root`
    cinic_part: Literal["all", "imagenet", "cifar10"] = "all"  # cinic10 only: which images of CINIC-10 to keep
    image_size: int = Field(16, ge=8, le=256)  # side length for digits/shapes (real sets keep theirs)
    test_fraction: float = Field(0.2, gt=0, lt=1)  # held-out share for digits/shapes
    samples_per_class: int = Field(200, ge=10)  # shapes only: generated images per class
    max_train: int | None = Field(None, ge=10)  # keep only the first N training rows (quick runs)
    seed: int = 0  # split / generation seed


def load_dataset(cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    """Return (train, test) ImageSets for `cfg` (uint8 NHWC, int64 labels)."""
    loaders = {"digits": _digits, "shapes": _shapes, "cifar10": _cifar10,
               "cinic10": _cinic10, "tinyimagenet": _tinyimagenet}
    train, test = loaders[cfg.name](cfg)
    if cfg.max_train is not None and cfg.max_train < len(train):
        train = train.subset(np.arange(cfg.max_train))
    return train, test


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Return uint8 NHWC images bilinearly resized to `size` x `size`."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train_idx, test_idx), holding out `test_fraction` of every class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_test = max(1, int(round(len(idx) * test_fraction)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _split(images: np.ndarray, labels: np.ndarray, classes: list[str], cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    full = ImageSet(images, labels.astype(np.int64), classes)
    train_idx, test_idx = stratified_split(full.labels, cfg.test_fraction, cfg.seed)
    return full.subset(train_idx), full.subset(test_idx)


def _digits(cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * (255.0 / 16.0)).round().astype(np.uint8)[..., None]
    return _split(resize_images(images, cfg.image_size), bunch.target, [str(d) for d in range(10)], cfg)


def _shapes(cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    images, labels, classes = generate_shapes(cfg.samples_per_class, cfg.image_size, cfg.seed)
    return _split(images, labels, classes, cfg)


def _require(path: Path, what: str, hint: str) -> Path:
    if not path.exists():
        raise DatasetMissingError(f"{what} not found at {path}: {hint}")
    return path


def _cifar10(cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    from torchvision.datasets import CIFAR10

    root = Path(cfg.root)
    if not cfg.download:
        _require(root / "cifar-10-batches-py", "CIFAR-10",
                 "extract cifar-10-python.tar.gz into that directory's parent (dataset.root), "
                 "or set dataset.download=true")
    try:
        parts = [CIFAR10(str(root), train=train, download=cfg.download) for train in (True, False)]
    except RuntimeError as exc:
        raise DatasetMissingError(f"CIFAR-10 under {root} is unusable: {exc}") from exc
    return tuple(ImageSet(np.asarray(p.data, dtype=np.uint8), np.asarray(p.targets, dtype=np.int64),
                          list(p.classes)) for p in parts)  # type: ignore[return-value]


def _image_folder(folder: Path, keep: Callable[[str], bool] = lambda name: True) -> ImageSet:
    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(str(folder))
    samples = [(path, label) for path, label in dataset.samples if keep(Path(path).name)]
    if not samples:
        raise DatasetMissingError(f"no images left under {folder} after choosing the dataset's part")
    images = np.stack([np.asarray(dataset.loader(path).convert("RGB"), dtype=np.uint8) for path, _ in samples])
    return ImageSet(images, np.asarray([label for _, label in samples], dtype=np.int64), list(dataset.classes))


CINIC10_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz"
CINIC10_PARTS: dict[str, Callable[[str], bool]] = {
    "all": lambda name: True,
    "imagenet": lambda name: not name.startswith("cifar10-"),  # ImageNet files are named <wnid>_<n>.png
    "cifar10": lambda name: name.startswith("cifar10-"),
}


def _cinic10(cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    root = Path(cfg.root) / "cinic10"
    if cfg.download and not (root / "train").is_dir():
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(CINIC10_URL, download_root=str(root), extract_root=str(root))
    _require(root / "train", "CINIC-10",
             f"download {CINIC10_URL} and extract it so that train/ and test/ class folders sit in "
             f"{root}, or set dataset.download=true")
    _require(root / "test", "CINIC-10's test part", "extract the whole archive there")
    keep = CINIC10_PARTS[cfg.cinic_part]
    return _image_folder(root / "train", keep), _image_folder(root / "test", keep)


def _tinyimagenet(cfg: DatasetConfig) -> tuple[ImageSet, ImageSet]:
    from PIL import Image

    root = _require(Path(cfg.root) / "tiny-imagenet-200", "Tiny-ImageNet",
                    "download tiny-imagenet-200.zip and extract it into dataset.root")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    index = {name: i for i, name in enumerate(classes)}
    train_images, train_labels = [], []
    for name in classes:
        for path in sorted((root / "train" / name / "images").glob("*.JPEG")):
            train_images.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8))
            train_labels.append(index[name])
    val_images, val_labels = [], []
    for line in (root / "val" / "val_annotations.txt").read_text().splitlines():
        file_name, wnid = line.split("\t")[:2]
        val_images.append(np.asarray(Image.open(root / "val" / "images" / file_name).convert("RGB"), dtype=np.uint8))
        val_labels.append(index[wnid])
    return (ImageSet(np.stack(train_images), np.asarray(train_labels, dtype=np.int64), classes),
            ImageSet(np.stack(val_images), np.asarray(val_labels, dtype=np.int64), classes))
