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
