"""Targeted-attack trials: a fixed target test image and fixed base training rows per trial.

As in the 'Just How Toxic' benchmark (Schwarzschild et al. 2021), each trial fixes the target
(a test row), its adversarial class and the training rows the poisons replace, so numbers are
comparable across defenses. Trials are stored as JSON (never pickled):

    {"format": "genlab-trials/1", "trials": [{"index": 0, "target_index": 17, "target_label": 3,
     "adversarial_class": 5, "base_indices": [4, 90, ...]}, ...]}

`merge_targeted` joins the PoisonSets of several trials that share an adversarial class and
have disjoint bases into one multi-target PoisonSet, so one classifier training measures every
target of the merge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.errors import PoisonSetError
from genlab.fileio import write_json_atomic

FORMAT = "genlab-trials/1"
TRIAL_KEYS = {"index", "target_index", "target_label", "adversarial_class", "base_indices"}


@dataclass(frozen=True)
class TargetedTrial:
    """One targeted-attack trial: which test image to flip, to which class, with which training rows."""

    index: int  # trial number 0..N-1
    target_index: int  # row of the TEST set to be misclassified
    target_label: int  # its true label
    adversarial_class: int  # the class the attack wants the target assigned to
    base_indices: np.ndarray  # int64, sorted rows of the TRAIN set (all of adversarial_class) the poisons replace

    def to_json(self) -> dict:
        """Return this trial as a JSON-serialisable dict (base_indices as a list of ints)."""
        return {"index": self.index, "target_index": self.target_index, "target_label": self.target_label,
                "adversarial_class": self.adversarial_class, "base_indices": [int(i) for i in self.base_indices]}


def poisons_per_trial(train_size: int, budget: float) -> int:
    """Return the number of poisons one trial gets: `budget` (share of the train set) * size, at least 1."""
    return max(1, int(round(budget * train_size)))


def make_trials(train: ImageSet, test: ImageSet, *, count: int, budget: float, seed: int,
                adversarial_class: int | None = None,
                runner_up: np.ndarray | None = None) -> list[TargetedTrial]:
    """Return `count` seeded trials with distinct target test rows.

    Default (benchmark protocol): each trial draws a target test row, an adversarial class
    different from the target's label, and `budget * len(train)` base rows of that class.
    With `adversarial_class` set, every trial shares that class, targets come from the other
    classes and the trials' bases are disjoint, so the trials can be merged (`merge_targeted`).
    With `runner_up` (int [len(test)]: the attacker's second choice of class for each test row,
    `runner_up_classes`), each trial's adversarial class is its target's runner-up.
    Raises ValueError if the classes hold too few rows for the request.
    """
    if count < 1 or not 0 < budget < 1:
        raise ValueError(f"make_trials needs count >= 1 and 0 < budget < 1, got count={count}, budget={budget}")
    num_classes = len(train.classes)
    if adversarial_class is not None and not 0 <= adversarial_class < num_classes:
        raise ValueError(f"adversarial_class {adversarial_class} is not one of the {num_classes} classes")
    if runner_up is not None and (adversarial_class is not None or runner_up.shape != test.labels.shape
                                  or np.any(runner_up == test.labels)):
        raise ValueError("runner_up needs one class per test row, each unlike the row's label, and no adversarial_class")
    rng = np.random.default_rng(seed)
    per_trial = poisons_per_trial(len(train), budget)
    eligible = np.arange(len(test)) if adversarial_class is None else np.flatnonzero(test.labels != adversarial_class)
    if count > len(eligible):
        raise ValueError(f"{count} trials need {count} distinct target test rows, only {len(eligible)} are eligible")
    targets = rng.choice(eligible, size=count, replace=False)
    shared_pool = None
    if adversarial_class is not None:
        shared_pool = rng.permutation(np.flatnonzero(train.labels == adversarial_class))
        if count * per_trial > len(shared_pool):
            raise ValueError(f"{count} disjoint trials of {per_trial} poisons need {count * per_trial} rows of class "
                             f"{adversarial_class}, only {len(shared_pool)} exist (lower count or budget)")
    trials = []
    for number, target in enumerate(targets):
        label = int(test.labels[target])
        if shared_pool is not None:
            chosen, bases = adversarial_class, shared_pool[number * per_trial:(number + 1) * per_trial]
        else:
            chosen = int(runner_up[target]) if runner_up is not None else int(
                rng.choice([c for c in range(num_classes) if c != label]))
            pool = np.flatnonzero(train.labels == chosen)
            if per_trial > len(pool):
                raise ValueError(f"budget {budget} needs {per_trial} rows of class {chosen}, only {len(pool)} exist")
            bases = rng.choice(pool, size=per_trial, replace=False)
        trials.append(TargetedTrial(index=number, target_index=int(target), target_label=label,
                                    adversarial_class=int(chosen), base_indices=np.sort(bases).astype(np.int64)))
    return trials


def save_trials(trials: list[TargetedTrial], path: str | Path) -> Path:
    """Write `trials` as JSON to `path` atomically; return the path."""
    return write_json_atomic(Path(path), {"format": FORMAT, "trials": [trial.to_json() for trial in trials]})


def load_trials(path: str | Path, *, train_size: int, test_size: int) -> list[TargetedTrial]:
    """Return the trials stored at `path`, validated; raise `PoisonSetError` naming the file and the reason.

    Checks: JSON with the format tag, trials numbered 0..N-1, integer fields, target rows in
    [0, test_size), base rows sorted, unique and in [0, train_size), adversarial class
    different from the target's label.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonSetError(f"{path}: cannot read trials ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("trials"), list):
        raise PoisonSetError(f"{path}: not a {FORMAT} file (needs 'format' and a 'trials' list)")
    return [_parse_trial(entry, number, path, train_size, test_size) for number, entry in enumerate(payload["trials"])]


def _parse_trial(entry: object, number: int, path: Path, train_size: int, test_size: int) -> TargetedTrial:
    def fail(reason: str) -> PoisonSetError:
        return PoisonSetError(f"{path}: trial {number}: {reason}")

    if not isinstance(entry, dict) or set(entry) != TRIAL_KEYS:
        raise fail(f"keys must be {sorted(TRIAL_KEYS)}")
    scalars = {key: entry[key] for key in TRIAL_KEYS - {"base_indices"}}
    if any(not isinstance(v, int) or isinstance(v, bool) for v in scalars.values()):
        raise fail(f"{sorted(scalars)} must be integers")
    bases = entry["base_indices"]
    if not isinstance(bases, list) or not bases or any(not isinstance(i, int) or isinstance(i, bool) for i in bases):
        raise fail("base_indices must be a non-empty list of integers")
    base_array = np.asarray(bases, dtype=np.int64)
    if scalars["index"] != number:
        raise fail(f"index is {scalars['index']}, expected {number} (trials are numbered 0..N-1 in order)")
    if not 0 <= scalars["target_index"] < test_size:
        raise fail(f"target_index {scalars['target_index']} is outside the test set [0, {test_size})")
    if base_array.min() < 0 or base_array.max() >= train_size:
        raise fail(f"base_indices must lie in the train set [0, {train_size})")
    if np.any(np.diff(base_array) <= 0):
        raise fail("base_indices must be sorted and unique")
    if scalars["adversarial_class"] == scalars["target_label"] or min(scalars["adversarial_class"], scalars["target_label"]) < 0:
        raise fail("adversarial_class and target_label must be distinct non-negative classes")
    return TargetedTrial(base_indices=base_array, **scalars)


def mergeable(trials: list[TargetedTrial]) -> bool:
    """Return True when `trials` share one adversarial class and no base row, so `merge_targeted` can join their
    sets. A shared `adversarial_class` guarantees it; per-trial classes (random or runner-up) that happen to
    coincide draw their bases independently and may overlap."""
    bases = np.concatenate([trial.base_indices for trial in trials])
    return len({trial.adversarial_class for trial in trials}) == 1 and len(np.unique(bases)) == len(bases)


def merge_targeted(poisons: list[PoisonSet]) -> PoisonSet:
    """Return one multi-target PoisonSet joining targeted PoisonSets of the same attack and adversarial class.

    Rows are sorted by base index; target_test_indices are concatenated in input order; seed and
    config are the first set's. Raises `PoisonSetError` if the sets are not all targeted, differ
    in attack, adversarial class, dataset, epsilon or config, or share a base row.
    """
    if not poisons:
        raise PoisonSetError("merge_targeted needs at least one PoisonSet")
    first = poisons[0]
    for other in poisons:
        if other.kind != "targeted":
            raise PoisonSetError(f"merge_targeted takes targeted PoisonSets, got a {other.kind} one ({other.attack})")
        for field_name in ("attack", "target_class", "dataset_hash", "epsilon", "config"):
            if getattr(other, field_name) != getattr(first, field_name):
                raise PoisonSetError(f"merge_targeted: PoisonSets differ in {field_name} "
                                     f"({getattr(first, field_name)!r} vs {getattr(other, field_name)!r})")
    bases = np.concatenate([p.base_indices for p in poisons])
    if len(np.unique(bases)) != len(bases):
        raise PoisonSetError("merge_targeted: the PoisonSets share base rows; trials to merge need disjoint bases")
    order = np.argsort(bases, kind="stable")
    return PoisonSet(base_indices=bases[order], images=np.concatenate([p.images for p in poisons])[order],
                     labels=np.concatenate([p.labels for p in poisons])[order], attack=first.attack, kind="targeted",
                     dataset_hash=first.dataset_hash, seed=first.seed, config=first.config,
                     target_class=first.target_class,
                     target_test_indices=[i for p in poisons for i in p.target_test_indices], epsilon=first.epsilon)
