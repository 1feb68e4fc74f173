"""Typed task configs: one frozen dataclass per task kind, checked before anything runs.

A task kind declares its knobs once, as dataclass fields with documented defaults (the way a
method declares keyword hyper-parameters). ``make_config`` checks a suite's values against the
field types, then the kind's ``validate`` checks ranges and consistency (``dim % heads``,
``epochs > 0``, ...). The config is hashed whole into every result; fields declared with
``evaluation(...)`` change only what is evaluated (OOD sets, corruptions, sample caps), so they
are left out of ``training()`` and of every checkpoint key: changing them re-evaluates and
never retrains.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any


def evaluation(default: Any) -> Any:
    """A field that changes only evaluation, never the trained weights."""
    return dataclasses.field(default=default, metadata={"evaluation": True})


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Base of every task kind's config."""

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line reason for values out of range or inconsistent."""

    def check_paths(self, root: Path) -> None:
        """Raise ``ValueError`` for user-given paths that do not exist (custom-data kinds)."""

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (sequences as lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def training(self) -> dict[str, Any]:
        """The fields that determine trained weights."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if not f.metadata.get("evaluation")}


def _plain(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def field_names(cls: type[TaskConfig]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as read from TOML) has the annotated type; an int is a float."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (tuple, list):
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_conforms(v, item) for v in value)
    if origin is dict:
        k, v = args or (Any, Any)
        return isinstance(value, dict) and all(_conforms(a, k) and _conforms(b, v) for a, b in value.items())
    return isinstance(value, hint)


def make_config(cls: type[TaskConfig], label: str, params: dict[str, Any]) -> TaskConfig:
    """A checked config from a suite's parameter deltas; ``ValueError`` naming task ``label``
    and the parameter otherwise."""
    valid = field_names(cls)
    bad = sorted(set(params) - set(valid))
    if bad:
        raise ValueError(f"task {label!r} has no parameter {', '.join(bad)} (valid: {', '.join(valid)})")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in params and not _conforms(params[f.name], hints[f.name]):
            raise ValueError(f"task {label!r}: parameter {f.name} must be {f.type}, got {params[f.name]!r}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    cfg = cls(**values)
    try:
        cfg.validate()
    except ValueError as e:
        raise ValueError(f"task {label!r}: {e}") from None
    return cfg


# --- range checks shared by the kinds --------------------------------------------------------


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def positive(cfg: TaskConfig, *names: str, optional: bool = False) -> None:
    """Each named field is > 0 (or None when ``optional``)."""
    for name in names:
        v = getattr(cfg, name)
        if optional and v is None:
            continue
        require(v > 0, f"{name} must be > 0{' or None' if optional else ''}, got {v!r}")


def non_negative(cfg: TaskConfig, *names: str) -> None:
    for name in names:
        require(getattr(cfg, name) >= 0, f"{name} must be >= 0, got {getattr(cfg, name)!r}")


def check_vit(img_size: int, dim: int, heads: int, patch: int) -> None:
    require(dim % heads == 0, f"dim={dim} is not divisible by heads={heads}")
    require(img_size % patch == 0, f"patch={patch} does not divide the image size {img_size}")
