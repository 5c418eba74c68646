"""YAML configs with `key=value` overrides, validated into pydantic models.

A config file may list other YAML files under `include:` (paths relative to it); they are
merged first and the including file wins (a file that includes itself, directly or not, is an
error). Overrides use dotted keys (`classifier.epochs=3`,
`attacks.0.epsilon=0.1`) and YAML values (`seeds=[0,1]`). Every problem becomes a
`ConfigError` whose message names the key or the file. Two conventions hold in every config
section (`StrictModel`): a field named `seed` or `seeds` holds non-negative integers, and a field
named `device` is `auto`, `cpu`, `cuda` or `cuda:N`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from genlab.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")  # the torch devices a config may name (genlab.runtime.resolve_device)


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment, and
    fields named `seed`/`seeds` and `device` follow the conventions of the module docstring."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="after")
    @classmethod
    def _conventions(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name in ("seed", "seeds"):
            seeds = value if isinstance(value, list) else [value]
            if any(isinstance(seed, int) and seed < 0 for seed in seeds):
                raise ValueError(f"a seed must be a non-negative integer, got {value}")
        if info.field_name == "device" and isinstance(value, str) and not DEVICE.fullmatch(value):
            raise ValueError(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
        return value


def load_yaml(path: str | Path, _including: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Return the mapping in a YAML file, with its `include:` files merged underneath it.

    Raises ConfigError if the file is missing or malformed, or if it includes itself (through any chain).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in _including:
        chain = " -> ".join(str(p) for p in (*_including, path.resolve()))
        raise ConfigError(f"config file {path} includes itself: {chain}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    merged: dict[str, Any] = {}
    for include in data.pop("include", []) or []:
        merged = deep_merge(merged, load_yaml(path.parent / include, (*_including, path.resolve())))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Return a new dict: `update` merged into `base`, recursing into nested mappings."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return `data` with each `dotted.key=yaml_value` override applied (list items by index)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        dotted, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {dotted}: value '{raw}' is not valid YAML") from exc
        node: Any = out
        parts = dotted.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {dotted}: no list item '{part}'")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"override {dotted}: '{'.'.join(parts[:depth])}' is not a mapping")
    return out


def validate(model_cls: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Return `model_cls` built from `data`; the first validation problem becomes a ConfigError."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "<root>"
        extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"config key {key}: {first['msg']}{extra}") from None


def load_config(model_cls: type[ModelT], path: str | Path | None, overrides: list[str] = ()) -> ModelT:
    """Return a validated config: the YAML at `path` (or the model's defaults) plus overrides."""
    data = load_yaml(path) if path is not None else {}
    return validate(model_cls, apply_overrides(data, list(overrides)))


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Return nested dicts/lists flattened to `{'a.b.0': 'value'}` strings (MLflow params)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    out: dict[str, str] = {}
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return {prefix: str(data)}
    for key, value in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, (dict, list, BaseModel)) and value:
            out.update(flatten(value, name))
        else:
            out[name] = str(value)
    return out
