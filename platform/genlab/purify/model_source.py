"""Where a generative purifier's model comes from, validated in one place.

A setting names its trained model by a checkpoint directory (`checkpoint`, written by
`jobs/train_<kind>.py`) or by the MLflow model registry (`registered_model` + `model_version`),
never both: `EbmSettings`, `DdpmSettings` and PureGen-Filt's `EnergyModelSettings` are
`ModelSource`s. `model_dir` gives the local checkpoint
directory (a registered model is downloaded once and checked to hold a checkpoint of the
setting's `model_kind`); `model_fingerprint` gives the digest of its weights, which keys the
purification cache (a retrained checkpoint changes it).

On a cluster the purifier actors run on worker nodes that cannot read the driver's disk, so a
model travels as bytes, not as a path: `bundle_checkpoint` reads a checkpoint directory on the
driver into a `CheckpointBundle` (its files and the sha256 each must have: the index's digests,
which also key the purification cache), the stage puts it in Ray's object store once, and each
actor writes it to a directory of its own with `unbundle_checkpoint`, which refuses any file
whose sha256 differs. `model_sources` lists the model settings in a (nested) setting and
`with_model_sources` rewrites them (e.g. to point at the arrived copy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Self, TypeVar

from pydantic import model_validator

from genlab.checkpoints import INDEX, read_checkpoint_index
from genlab.config import StrictModel
from genlab.errors import CheckpointError

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
    from genlab.tracking import resolve_registered_checkpoint  # MLflow only for registered models (1 s to import)

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


SettingsT = TypeVar("SettingsT", bound=StrictModel)


def model_sources(settings: StrictModel) -> list[ModelSource]:
    """Return every `ModelSource` in `settings`: nested ones first (depth first, field order), then itself."""
    found = [source for name in type(settings).model_fields
             if isinstance(value := getattr(settings, name), StrictModel) for source in model_sources(value)]
    return found + [settings] if isinstance(settings, ModelSource) else found


def with_model_sources(settings: SettingsT, replace: Callable[[ModelSource], ModelSource]) -> SettingsT:
    """Return `settings` with every `ModelSource` in it (nested ones too, and itself) replaced by `replace(source)`."""
    changed = {name: with_model_sources(value, replace) for name in type(settings).model_fields
               if isinstance(value := getattr(settings, name), StrictModel)}
    settings = settings.model_copy(update=changed) if changed else settings
    return replace(settings) if isinstance(settings, ModelSource) else settings


def with_local_checkpoint(source: ModelSource) -> ModelSource:
    """Return `source` naming its model by the local checkpoint directory (a registered model downloaded first)."""
    return source.model_copy(update={"checkpoint": str(model_dir(source)), "registered_model": None,
                                     "model_version": None})


@dataclass(frozen=True)
class CheckpointBundle:
    """A checkpoint directory as bytes, to travel through Ray's object store to nodes that cannot read `origin`.

    `files`: file name -> content (`checkpoint.json` and every `<group>.safetensors` it lists);
    `sha256`: file name -> the hex digest the file must have on arrival (a group file's is the
    one in the index, which also keys the purification cache).
    """

    origin: str  # the checkpoint directory it was read from (on the driver), for messages
    files: dict[str, bytes]
    sha256: dict[str, str]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_checkpoint(path: str | Path, kind: str) -> CheckpointBundle:
    """Return the checkpoint directory `path` (of `kind`) as a `CheckpointBundle`, checked against its index.

    Raises `CheckpointError` if it is not a checkpoint of `kind` or a file's sha256 already differs here.
    """
    path = Path(path)
    index = read_checkpoint_index(path, kind=kind)
    files = {INDEX: (path / INDEX).read_bytes()}
    digests = {INDEX: _sha256(files[INDEX])}
    for group, digest in index["files"].items():
        name = f"{group}.safetensors"
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name}: missing (listed in {INDEX})")
        files[name], digests[name] = (path / name).read_bytes(), digest
    bundle = CheckpointBundle(str(path), files, digests)
    verify_bundle(bundle, where="on the driver")
    return bundle


def verify_bundle(bundle: CheckpointBundle, *, where: str) -> None:
    """Raise `CheckpointError` (one line, naming the file, `where` and both digests) if a file's sha256 differs."""
    for name, data in bundle.files.items():
        found = _sha256(data)
        if found != bundle.sha256.get(name):
            raise CheckpointError(f"model {bundle.origin}: {name} {where} has sha256 {found[:16]}..., expected "
                                  f"{str(bundle.sha256.get(name))[:16]}... (the driver's {INDEX}); refusing to load it")


def unbundle_checkpoint(bundle: CheckpointBundle, into: str | Path) -> Path:
    """Verify `bundle` (sha256 of every file, `CheckpointError` on a mismatch), write it to directory `into`
    (created; must not exist yet) and return `into`: a checkpoint directory the loaders read."""
    verify_bundle(bundle, where="on arrival")
    into = Path(into)
    into.mkdir(parents=True)
    for name, data in bundle.files.items():
        (into / name).write_bytes(data)
    return into
