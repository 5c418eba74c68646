"""Datasets and the ImageSet format."""

import numpy as np
import pytest

from genlab.data import DatasetConfig, ImageSet, load_dataset
from genlab.errors import DatasetMissingError


def test_digits_are_real_uint8_and_split_by_class(digits):
    train, test = digits
    assert train.images.dtype == np.uint8 and train.shape == (16, 16, 1)
    assert len(train) + len(test) == 1797
    assert set(np.unique(test.labels)) == set(range(10))
    assert train.images.max() > 200  # real strokes, not an empty canvas


def test_shapes_are_deterministic_by_seed():
    a, _ = load_dataset(DatasetConfig(name="shapes", image_size=32, samples_per_class=20))
    b, _ = load_dataset(DatasetConfig(name="shapes", image_size=32, samples_per_class=20))
    c, _ = load_dataset(DatasetConfig(name="shapes", image_size=32, samples_per_class=20, seed=1))
    assert a.shape == (32, 32, 3) and a.hash == b.hash != c.hash


def test_imageset_round_trip_is_exact(tmp_path, digits):
    train, _ = digits
    path = train.save(tmp_path / "digits")
    loaded = ImageSet.load(path)
    assert loaded.hash == train.hash and np.array_equal(loaded.images, train.images)


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cinic10", "cinic10"),
                                          ("tinyimagenet", "tiny-imagenet-200")])
def test_missing_real_dataset_says_where_to_put_it(tmp_path, name, folder):
    with pytest.raises(DatasetMissingError, match=folder):
        load_dataset(DatasetConfig(name=name, root=str(tmp_path)))


def _write_cinic(root, files):
    """A CINIC-10-style folder tree: root/cinic10/{train,test}/<class>/<file>.png, one solid 32x32 image each."""
    from PIL import Image

    for part in ("train", "test"):
        for k, (label, name) in enumerate(files):
            folder = root / "cinic10" / part / label
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), 10 * k, dtype=np.uint8)).save(folder / name)


def test_cinic10_imagenet_part_keeps_only_the_imagenet_files(tmp_path):
    _write_cinic(tmp_path, [("airplane", "n02691156_1.png"), ("airplane", "cifar10-train-7.png"),
                            ("cat", "n02123045_9.png"), ("cat", "cifar10-train-3.png")])
    imagenet, _ = load_dataset(DatasetConfig(name="cinic10", root=str(tmp_path), cinic_part="imagenet"))
    everything, _ = load_dataset(DatasetConfig(name="cinic10", root=str(tmp_path)))
    cifar, _ = load_dataset(DatasetConfig(name="cinic10", root=str(tmp_path), cinic_part="cifar10"))
    assert (len(imagenet), len(cifar), len(everything)) == (2, 2, 4)
    assert imagenet.classes == ["airplane", "cat"] and sorted(imagenet.labels.tolist()) == [0, 1]
    assert imagenet.shape == (32, 32, 3)


def test_cinic10_without_its_test_part_says_so(tmp_path):
    (tmp_path / "cinic10" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetMissingError, match="test"):
        load_dataset(DatasetConfig(name="cinic10", root=str(tmp_path)))


def test_pool_split_is_disjoint_stratified_and_seeded(digits):
    from genlab.data.splits import DataSplitConfig, overlap, split_pool

    train, test = digits
    split = split_pool(train, test, DataSplitConfig(generative_fraction=0.35, seed=0))
    again = split_pool(train, test, DataSplitConfig(generative_fraction=0.35, seed=0))
    other = split_pool(train, test, DataSplitConfig(generative_fraction=0.35, seed=1))
    assert not set(split.generative_rows) & set(split.classifier_rows)
    assert len(split.generative_rows) + len(split.classifier_rows) == len(train)
    assert set(split.test_rows) == set(range(len(train), len(train) + len(test)))
    assert np.array_equal(split.generative_rows, again.generative_rows)
    assert not np.array_equal(split.generative_rows, other.generative_rows)
    for label in range(10):  # every class is split in the same proportion (within one row)
        share = np.mean(split.generative.labels == label) / np.mean(train.labels == label)
        assert abs(share * len(split.generative) / len(train) - 0.35) < 0.02
    assert overlap(split.generative.images, split.classifier.images) == 0
    assert overlap(split.generative.images, test.images) == 0
    assert overlap(train.images[:5], split.classifier.images) == np.isin(np.arange(5), split.classifier_rows).sum()
