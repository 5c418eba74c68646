"""The disjoint data rule of the defense sweep: one pool, split once by a recorded seed.

The pool is a dataset's training rows (ids 0..N-1) followed by its test rows (ids N..N+M-1).
The test rows stay the test set; the training rows are split, stratified by class with
`DataSplitConfig.seed`, into generative-training rows (the EBM and the DDPM learn from them)
and classifier-training rows (attacked, purified, learnt by the classifier). As in PureGen
(spec puregen.md §2.2: the generative models learn from CINIC-10's ImageNet part, the classifier
from CIFAR-10), the generative models never see an image the classifier trains or is tested on.

`overlap` counts shared images by content hash (sha1 of each image's bytes), so a check holds
whatever the rows' provenance: a separate generative dataset is checked the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from genlab.config import StrictModel
from genlab.data.imageset import ImageSet


class DataSplitConfig(StrictModel):
    """How the training rows are shared between the generative models and the classifier."""

    # share of each class's training rows kept for the EBM/DDPM; 0: none (the classifier keeps every training row)
    generative_fraction: float = Field(0.35, ge=0, lt=1)
    seed: int = 0  # split seed (recorded in the sweep's config and summary)


@dataclass(frozen=True)
class PoolSplit:
    """The three disjoint parts of one pool and their row ids (int64, sorted, ids into train + test)."""

    generative: ImageSet
    classifier: ImageSet
    test: ImageSet
    generative_rows: np.ndarray
    classifier_rows: np.ndarray
    test_rows: np.ndarray
    seed: int

    def describe(self) -> dict[str, int]:
        """Return the split's sizes and seed (rows per part)."""
        return {"seed": self.seed, "generative_rows": len(self.generative_rows),
                "classifier_rows": len(self.classifier_rows), "test_rows": len(self.test_rows)}


def split_pool(train: ImageSet, test: ImageSet, cfg: DataSplitConfig) -> PoolSplit:
    """Return `train` split per class into generative and classifier rows (seeded), with `test` kept whole.

    With a fraction above 0, every class keeps at least one row on each side; the generative side holds
    `round(generative_fraction * class size)` rows of it. A fraction of 0 gives every row to the classifier.
    """
    rng = np.random.default_rng(cfg.seed)
    generative, classifier = [], []
    for label in np.unique(train.labels):
        rows = rng.permutation(np.flatnonzero(train.labels == label))
        count = min(len(rows) - 1, max(1, int(round(cfg.generative_fraction * len(rows))))) \
            if cfg.generative_fraction > 0 else 0
        generative.append(rows[:count])
        classifier.append(rows[count:])
    gen_rows, clf_rows = np.sort(np.concatenate(generative)), np.sort(np.concatenate(classifier))
    return PoolSplit(generative=train.subset(gen_rows), classifier=train.subset(clf_rows), test=test,
                     generative_rows=gen_rows.astype(np.int64), classifier_rows=clf_rows.astype(np.int64),
                     test_rows=np.arange(len(train), len(train) + len(test), dtype=np.int64), seed=cfg.seed)


def content_hashes(images: np.ndarray) -> set[str]:
    """Return the set of sha1 hex digests of each uint8 image's bytes (identical images share one)."""
    return {hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images}


def overlap(images: np.ndarray, others: np.ndarray) -> int:
    """Return how many of `images` (uint8 NHWC) equal, byte for byte, an image of `others` (a count >= 0)."""
    if images.shape[1:] != others.shape[1:]:
        return 0
    known = content_hashes(others)
    return sum(hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() in known for image in images)
