"""Datasets, the `ImageSet` container and Ray Data adapters."""

from genlab.data.datasets import DatasetConfig, load_dataset
from genlab.data.imageset import ImageSet

__all__ = ["DatasetConfig", "ImageSet", "load_dataset"]
