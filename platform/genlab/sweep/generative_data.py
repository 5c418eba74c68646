"""What the sweep's generative models learn from, and the proof that it is disjoint from the classifier's data.

`generative_training_set` returns the rows `SweepConfig.generative_data` names: `disjoint` (the
default and the rule, as PureGen) = the pool split's generative rows, or `generative_dataset`
converted to the sweep's image format; the ablations `same_as_classifier` (the classifier's clean
training rows) and `poisoned` (those rows with every attack's poisoned rows in their places; not the
defense-aware attacks', which are crafted through these models).
`generative_training_block` is summary.json's `generative_training`: per model kind, the data,
its row count and its overlap with the classifier's training rows and the test rows, counted by
content hash from the actual images (genlab.data.splits.overlap). Under `disjoint` an overlap is
a ConfigError: the models must never see a classifier or test image.
"""

from __future__ import annotations

from typing import Any

from genlab.data import load_dataset
from genlab.data.convert import match_format
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.data.splits import PoolSplit, overlap
from genlab.errors import ConfigError
from genlab.sweep.config import SweepConfig
from genlab.sweep.provisioning import model_kinds
from genlab.sweep.training_sets import cfg_settings


def generative_training_set(cfg: SweepConfig, split: PoolSplit, poisons: dict[str, PoisonSet]) -> tuple[ImageSet, str]:
    """Return (the images the sweep's EBM and DDPM learn from, a one-line description of them)."""
    if cfg.generative_data == "same_as_classifier":
        return split.classifier, f"{cfg.dataset.name} classifier rows (ablation: same_as_classifier)"
    if cfg.generative_data == "poisoned":
        rows = split.classifier
        for poison in poisons.values():
            rows = rows.replace_rows(poison.base_indices, poison.images, poison.labels)
        return rows, f"{cfg.dataset.name} classifier rows with the poisons of {', '.join(poisons)} (ablation: poisoned)"
    if cfg.generative_dataset is not None:
        other, _ = load_dataset(cfg.generative_dataset)
        part = f" ({cfg.generative_dataset.cinic_part} part)" if cfg.generative_dataset.name == "cinic10" else ""
        return (ImageSet(match_format(other.images, split.classifier.shape), other.labels, other.classes),
                f"{cfg.generative_dataset.name}{part} training set")
    return split.generative, f"{cfg.dataset.name} generative rows (split seed {split.seed})"


def generative_training_block(cfg: SweepConfig, generative: ImageSet, description: str,
                              split: PoolSplit) -> dict[str, dict[str, Any]]:
    """Return {model kind: {dataset, rows, overlap_with_classifier_train, overlap_with_test, generative_data}}
    for every model kind `cfg.purifiers` uses.

    A kind no setting leaves untrained uses models the config names (checkpoint or registry): their
    training data is not this sweep's to check, and the entry says so (rows and overlaps None). Raises ConfigError
    when `generative_data` is `disjoint` and a trained model's data shares an image with the
    classifier's training or test rows.
    """
    settings = cfg_settings(cfg)
    kinds = sorted(set().union(*(model_kinds(s) for s in settings)))
    given = set(kinds) - set().union(*(model_kinds(s, untrained_only=True) for s in settings))
    trained = {"dataset": description, "rows": len(generative),
               "overlap_with_classifier_train": overlap(generative.images, split.classifier.images),
               "overlap_with_test": overlap(generative.images, split.test.images),
               "generative_data": cfg.generative_data} if set(kinds) - given else None
    if trained and cfg.generative_data == "disjoint" and (
            trained["overlap_with_classifier_train"] or trained["overlap_with_test"]):
        raise ConfigError(f"generative_data: disjoint, but {description} shares "
                          f"{trained['overlap_with_classifier_train']} images with the classifier's training rows and "
                          f"{trained['overlap_with_test']} with the test rows")
    untracked = {"dataset": "a model the config names (checkpoint or registry): its training data is not checked here",
                 "rows": None, "overlap_with_classifier_train": None, "overlap_with_test": None,
                 "generative_data": "given"}
    return {kind: untracked if kind in given else trained for kind in kinds}


def row_statement(kinds: set[str], block: dict[str, dict[str, Any]]) -> str:
    """Return what a purifier row's generative models learnt from, e.g. `ebm,ddpm: digits generative rows
    (split seed 0), 504 rows, overlap 0 train / 0 test`; `-` for a purifier without a generative model."""
    described: dict[str, list[str]] = {}
    for kind in sorted(kinds):
        entry = block[kind]
        text = entry["dataset"] if entry["rows"] is None else (
            f"{entry['dataset']}, {entry['rows']} rows, overlap {entry['overlap_with_classifier_train']} train / "
            f"{entry['overlap_with_test']} test")
        described.setdefault(text, []).append(kind)
    return "; ".join(f"{','.join(names)}: {text}" for text, names in described.items()) or "-"
