"""Where a generative purifier's model comes from, validated in one place.

A setting names its trained model by a checkpoint directory (`checkpoint`, written by
`jobs/train_<kind>.py`) or by the MLflow model registry (`registered_model` + `model_version`),
never both: `EbmSettings`, `DdpmSettings` and PureGen-Filt's `EnergyModelSettings` are
`ModelSource`s. `model_dir` gives the local checkpoint
directory (a registered model is downloaded once and checked to hold a checkpoint of the
setting's `model_kind`); `model_fingerprint` gives the digest of its weights, which keys the
purification cache (a retrained checkpoint changes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import model_validator

from genlab.checkpoints import read_checkpoint_index
from genlab.config import StrictModel
from genlab.errors import CheckpointError
from genlab.tracking import resolve_registered_checkpoint

TRAIN_HINTS = {  # model kind -> how to get one when a setting names none
    "ebm": "train one with `python jobs/train_ebm.py` (conf/train_ebm.yaml), which registers genlab-ebm-<dataset>",
    "ddpm": "train one with `python jobs/train_ddpm.py` (conf/train_ddpm.yaml), which registers genlab-ddpm-<dataset>",
}


class ModelSource(StrictModel):
    """Base of a setting that names a trained model: `checkpoint` or `registered_model`, not both.

    Subclasses set the checkpoint `model_kind` and `missing_model` (the start of the error raised
    when neither is set, naming the fields as a config spells them).
    """

    model_kind: ClassVar[str]  # checkpoint kind the model must have ("ebm", "ddpm")
    missing_model: ClassVar[str]  # e.g. "purifier ebm needs checkpoint=... or registered_model=..."
    checkpoint: str | None = None  # checkpoint directory (from jobs/train_<kind>.py); or use registered_model
    registered_model: str | None = None  # MLflow registry name, e.g. genlab-ebm-digits, genlab-ddpm-digits
    model_version: int | str | None = None  # registry version number or alias; None = latest version

    @model_validator(mode="after")
    def _one_model_source(self) -> Self:
        if self.checkpoint is not None and self.registered_model is not None:
            raise ValueError("set either checkpoint or registered_model, not both")
        return self

    def weights_fingerprint(self) -> str | None:
        """Return the sha256 of the named model's weights (see `model_fingerprint`)."""
        return model_fingerprint(self)


def registered_checkpoint(name: str, version_or_alias: str | int | None, *, kind: str) -> Path:
    """Return the local directory of registered model `name` (downloaded once, cached under `.genlab/models`).

    `version_or_alias`: a version number, an alias, or None / `latest` for the newest version.
    Raises `CheckpointError` if it is absent or not a checkpoint of `kind`.
    """
    path = resolve_registered_checkpoint(name, version_or_alias)
    read_checkpoint_index(path, kind=kind)
    return path


def model_dir(source: ModelSource) -> Path:
    """Return the checkpoint directory a `ModelSource` names; raise `CheckpointError` with the train command if none."""
    if source.checkpoint is not None:
        return Path(source.checkpoint)
    if source.registered_model is not None:
        return registered_checkpoint(source.registered_model, source.model_version, kind=source.model_kind)
    raise CheckpointError(f"{source.missing_model}; {TRAIN_HINTS[source.model_kind]}")


def model_fingerprint(source: ModelSource) -> str:
    """Return the sha256 (hex) of the weights of the model a `ModelSource` names, from its checkpoint index."""
    return read_checkpoint_index(model_dir(source), kind=source.model_kind)["files"]["model"]
