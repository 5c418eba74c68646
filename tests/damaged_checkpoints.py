"""Checkpoint folders damaged on purpose (genlab.checkpoints' layout: model.safetensors beside checkpoint.json), and
the check that the EBM and DDPM loaders refuse pickled weights without unpickling them."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch


class _CreatesFile:
    """Pickles to a call of open(path, "w"): unpickling it creates the file `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def flip_a_weight_byte(checkpoint: Path) -> Path:
    """Flip one byte near the end of `checkpoint`/model.safetensors (the weights no longer match their hash); return
    `checkpoint`."""
    weights = checkpoint / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    return checkpoint


def assert_pickled_weights_refused(net: torch.nn.Module, kind: str, folder: Path,
                                   load_checkpoint: Callable[[Path], object],
                                   load_weights_file: Callable[[Path], object]) -> None:
    """Check that `load_checkpoint` refuses a checkpoint of `net` (`kind` "ebm" or "ddpm", saved under `folder`)
    whose model.safetensors is a pickle, and `load_weights_file` a torch.save file of `net`'s weights, each with a
    CheckpointError saying "pickled", and that nothing was unpickled."""
    from genlab.checkpoints import save_model
    from genlab.errors import CheckpointError

    marker = folder / "unpickled.txt"  # created only if something unpickles the payload
    pickled = save_model(folder / "pickled", net, kind=kind)
    (pickled / "model.safetensors").write_bytes(pickle.dumps({"weight": _CreatesFile(marker)}, protocol=4))
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(pickled)
    torch.save(net.state_dict(), folder / "weights.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        load_weights_file(folder / "weights.pt")
    assert not marker.exists()
