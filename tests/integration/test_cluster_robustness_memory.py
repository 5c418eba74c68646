"""Issue 27 point 6: the driver's memory stays near one training set whatever the grid size (each set goes to Ray's
object store as it is made), on a real local Ray. Measured with tracemalloc, numpy's allocations only: the live
(reachable, after a garbage collection that drops closed matplotlib grid figures) numpy bytes at the moment each
training set is complete (the driver's high point: one set more than before), for a grid of 1 and of 8 attacks."""

import gc
import tracemalloc

import numpy as np

from genlab.attacks import BadNetsConfig, craft_poisons
from genlab.sweep import training_sets
from genlab.sweep.config import SweepConfig
from genlab.sweep.set_store import load_training_set

NUMPY_ONLY = [tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)]


def _numpy_high_point(cfg, train, poisons, out_dir, settings, monkeypatch) -> tuple[int, list]:
    """Return (the most live numpy bytes seen when a training set was complete, the sets built)."""
    seen = []
    store = training_sets.store_training_set

    def measured_store(images, labels):
        gc.collect()
        seen.append(sum(s.size for s in tracemalloc.take_snapshot().filter_traces(NUMPY_ONLY).statistics("filename")))
        return store(images, labels)

    monkeypatch.setattr(training_sets, "store_training_set", measured_store)
    tracemalloc.start()
    try:
        sets = training_sets.purify_training_sets(cfg, settings, train, poisons, out_dir)
    finally:
        tracemalloc.stop()
    return max(seen), sets


def test_driver_memory_stays_near_one_training_set_as_the_grid_grows(tmp_path, digits, ray_session, monkeypatch):
    train = digits[0]
    poison = craft_poisons(BadNetsConfig(), train, seed=0)
    cfg = SweepConfig(work_dir=str(tmp_path / "work"))
    settings = [s for entry in cfg.purifiers[:1] for s in entry.settings()]  # none: no purification stage needed
    one_set = train.images.nbytes + train.labels.nbytes
    small, _ = _numpy_high_point(cfg, train, {"a0": poison}, tmp_path / "small", settings, monkeypatch)
    large, sets = _numpy_high_point(cfg, train, {f"a{i}": poison for i in range(8)}, tmp_path / "large", settings,
                                    monkeypatch)
    assert len(sets) == 8
    images, labels = load_training_set(sets[-1].data)  # each trial fetches its own set
    assert images.shape == train.images.shape and (labels[poison.base_indices] == poison.labels).all()
    # eight sets held at once would add 7 * one_set; streamed to the object store they add well under one
    assert small > one_set and large - small < one_set / 2, (small, large, one_set)
