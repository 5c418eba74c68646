"""LAVAE without training: augmentations, the MNIST loader, latent maps, AdaBelief, and configs refused (the job
and its sweep: integration/test_latent_augment.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.augment.augmentations import AUGMENTATIONS, augment, is_involutive
from genlab.augment.config import LatentAugmentConfig
from genlab.augment.data import AugmentDataConfig, load_images, paired_set
from genlab.augment.optim import AdaBelief
from genlab.config import load_config
from genlab.data.convert import UNIT, to_tensor
from genlab.errors import ConfigError
from genlab.models.latent_maps import LatentMaps
from tests.helpers import REPO

CONF = REPO / "conf" / "latent_augment.yaml"


@pytest.fixture
def images(digits):
    """16 digits test images as float [16,1,16,16] in [0,1]."""
    return to_tensor(digits[1].images[:16], UNIT)


def test_augmentations_are_seeded_change_the_image_and_stay_in_range(images):
    for name in AUGMENTATIONS:
        first = augment(images, name, torch.Generator().manual_seed(3))
        again = augment(images, name, torch.Generator().manual_seed(3))
        assert torch.equal(first, again), name
        assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1, name
        assert (first - images).abs().mean() > 0.01, f"{name} barely changes the images"


def test_exactly_the_flagged_augmentations_are_involutions(images):
    generator = torch.Generator().manual_seed(0)
    for name in AUGMENTATIONS:
        twice = augment(augment(images, name, generator), name, generator)
        assert torch.allclose(twice, images) == is_involutive(name), name
    assert torch.equal(augment(augment(images, "rotate_cw", generator), "rotate_ccw", generator), images)
    flips = paired_set(images, ("flip_lr", "flip_ud"), seed=0, split="test")
    assert torch.equal(flips.compose, augment(images, "rotate180", generator))


def test_mnist_loads_from_a_local_torchvision_copy(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        header = np.array([0x803, n, 28, 28], dtype=">i4").tobytes()
        (raw / f"{split}-images-idx3-ubyte").write_bytes(header + rng.integers(0, 256, (n, 28, 28), np.uint8).tobytes())
        labels = np.array([0x801, n], dtype=">i4").tobytes() + (np.arange(n) % 10).astype(np.uint8).tobytes()
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(labels)
    train, test = load_images(AugmentDataConfig(name="mnist", root=str(tmp_path), max_train=32))
    assert train.images.shape == (32, 28, 28, 1) and test.images.shape == (20, 28, 28, 1)
    assert train.labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_latent_maps_apply_in_order_and_measure_involution():
    maps = LatentMaps(["reflect", "swap"], 3)
    with torch.no_grad():
        maps.matrices["reflect"].copy_(torch.diag(torch.tensor([1.0, -1.0, 1.0])))
        maps.matrices["swap"].copy_(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    z = torch.randn(5, 3)
    assert torch.allclose(maps(z, ["reflect", "swap"]), z @ maps.matrices["reflect"] @ maps.matrices["swap"])
    assert maps.involution_error("reflect").item() == 0.0
    assert maps.involution_error("swap").item() > 1.0  # a 3-cycle is not its own inverse


def test_adabelief_minimises_a_quadratic():
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = AdaBelief([param], lr=0.1)
    for _ in range(150):
        optimizer.zero_grad()
        ((param - torch.tensor([3.0, -1.0, 0.5])) ** 2).sum().backward()
        optimizer.step()
    assert torch.allclose(param.detach(), torch.tensor([3.0, -1.0, 0.5]), atol=0.05)


@pytest.mark.parametrize("override", ["pairs=[[flip_lr,flip_lr]]", "pairs=[[flip_lr,warp]]", "model.width=3",
                                      "data.image_size=18", "sweep.grid={sweep.metric: [a]}"])
def test_bad_config_is_a_config_error(override):
    with pytest.raises(ConfigError):
        load_config(LatentAugmentConfig, CONF, [override])
