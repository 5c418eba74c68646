"""Checkpoints: safetensors tensor files plus one JSON file, written atomically, never pickled.

A checkpoint is a directory:

    <dir>/checkpoint.json        {"format": "genlab-checkpoint/1", "kind": ..., "config": {...},
                                  "meta": {...}, "files": {"<group>": "<sha256 of the file>"}}
    <dir>/<group>.safetensors    one file per tensor group (e.g. model, optimizer, bank)

It is written to a temp directory beside `<dir>` and renamed into place when complete, so a
killed writer leaves no half checkpoint. Loading checks the JSON, every file's sha256 and
the safetensors header, and refuses pickled files (`torch.save` archives, `.pt`/`.pth`,
pickle protocol bytes) with a `CheckpointError` naming the file and the reason; nothing is
ever unpickled. The MLflow registry of checkpoint directories lives in `genlab.tracking`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import BaseModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from genlab.errors import CheckpointError
from genlab.fileio import atomic_directory, write_json_atomic

FORMAT = "genlab-checkpoint/1"
INDEX = "checkpoint.json"
_GROUP = re.compile(r"^[A-Za-z0-9_-]+$")


def save_checkpoint(path: str | Path, *, kind: str, config: BaseModel | dict[str, Any],
                    tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory atomically; return its path.

    `kind` names what it holds (`ebm`, `ebm-train-state` ...), `config` is the model config,
    `tensors` maps group name -> {tensor name -> tensor} (saved contiguous, on CPU), and
    `meta` holds any other JSON values (step counter, optimizer hyper-parameters ...).
    """
    path = Path(path)
    config_json = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    with atomic_directory(path) as tmp:
        digests = {}
        for group, named in tensors.items():
            if not _GROUP.match(group):
                raise ValueError(f"checkpoint group name {group!r} must match {_GROUP.pattern}")
            file = tmp / f"{group}.safetensors"
            save_file({name: t.detach().to("cpu").contiguous() for name, t in named.items()}, str(file))
            digests[group] = _sha256(file)
        write_json_atomic(tmp / INDEX, {"format": FORMAT, "kind": kind, "config": config_json,
                                        "meta": meta or {}, "files": digests})
    return path


def read_checkpoint_index(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Return the parsed `checkpoint.json` of a checkpoint directory, checking format and `kind`."""
    path = Path(path)
    if path.is_file():
        what = "is a pickled file (torch.save / pickle), refused: genlab never unpickles" if _looks_pickled(path) else "is a file"
        raise CheckpointError(f"{path}: {what}; a genlab checkpoint is a directory holding {INDEX} and *.safetensors files")
    index_path = path / INDEX
    if not index_path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here ({INDEX} is missing)")
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{index_path}: corrupt, not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("files"), dict):
        raise CheckpointError(f"{index_path}: not a {FORMAT} index")
    if kind is not None and index.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {index.get('kind')!r} checkpoint, expected {kind!r}")
    return index


def load_checkpoint(path: str | Path, *, kind: str | None = None, device: str | torch.device = "cpu",
                    expected_config: BaseModel | dict[str, Any] | None = None) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Return (tensors by group, index) of a checkpoint directory, verified.

    Raises `CheckpointError` if the directory or a file is missing, a file's sha256 differs
    from the index (corrupt or swapped), a file is pickled or not safetensors, the `kind`
    differs, or `expected_config` (when given) differs from the stored config.
    """
    path = Path(path)
    index = read_checkpoint_index(path, kind=kind)
    if expected_config is not None:
        check_config(path, index["config"], expected_config)
    tensors = {}
    for group, digest in index["files"].items():
        file = path / f"{group}.safetensors"
        if not file.is_file():
            raise CheckpointError(f"{file}: missing (listed in {INDEX})")
        if _looks_pickled(file):
            raise CheckpointError(f"{file}: is a pickled file (torch.save / pickle), refused: genlab never unpickles, "
                                  f"it loads only safetensors")
        if _sha256(file) != digest:
            raise CheckpointError(f"{file}: corrupt (sha256 differs from {INDEX}); refusing to load it")
        try:
            tensors[group] = load_file(str(file), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{file}: not a valid safetensors file ({exc})") from None
    return tensors, index


def check_config(path: Path, stored: dict[str, Any], expected: BaseModel | dict[str, Any]) -> None:
    """Raise `CheckpointError` naming the keys where a checkpoint's config differs from `expected`."""
    expected_json = expected.model_dump(mode="json") if isinstance(expected, BaseModel) else expected
    differing = sorted(k for k in set(stored) | set(expected_json) if stored.get(k) != expected_json.get(k))
    if differing:
        detail = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs expected {expected_json.get(k)!r}" for k in differing)
        raise CheckpointError(f"{path}: config mismatch ({detail})")


def save_model(path: str | Path, model: nn.Module, *, kind: str, meta: dict[str, Any] | None = None) -> Path:
    """Save a network that carries its config (`model.config`, a StrictModel) as a checkpoint."""
    return save_checkpoint(path, kind=kind, config=model.config, tensors={"model": model.state_dict()}, meta=meta)


def load_frozen_model(path: str | Path, *, kind: str, config_cls: type[BaseModel], build: Callable[[Any], nn.Module],
                      device: str | torch.device = "cpu") -> nn.Module:
    """Return the network of checkpoint `path` (built by `build(config)`), in eval mode on `device`, weights frozen."""
    tensors, index = load_checkpoint(path, kind=kind, device=device)
    try:
        config = config_cls.model_validate(index["config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: {kind} config is invalid ({str(exc).splitlines()[0]})") from None
    model = build(config).to(device)
    load_state_into(model, tensors["model"], Path(path))
    model.eval().requires_grad_(False)
    return model


def load_state_into(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into `module` strictly; missing/unexpected/mis-shaped tensors become a CheckpointError."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the network ({str(exc).splitlines()[0]} ...)") from None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state into tensors (`<param index>.<name>`) and JSON (param groups, scalars)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> None:
    """Load the state written by `optimizer_tensors` into `optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *saved["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"optimizer state does not fit this model: {exc}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _looks_pickled(path: Path) -> bool:
    """True if `path` is not a safetensors file (8-byte length, then '{') but starts like a pickle or a zip."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return False
    pickle_protocol = len(head) >= 2 and head[0] == 0x80 and head[1] in range(2, 6)
    return pickle_protocol or head.startswith(b"PK\x03\x04") or path.suffix in (".pt", ".pth", ".pkl", ".pickle")
