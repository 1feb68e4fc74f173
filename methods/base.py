"""The ``UQMethod`` contract, the ``Task`` protocol methods see, and the method registry.

A method is configured by keyword hyper-parameters only (stored by ``__init__``, checked by
``validate``); ``fit(task)`` does all the work and leaves the fitted networks in ``models_``
(a ``ModuleList`` of ``StreamTransformer``, or of the modules ``build_network`` builds from their
``config``). ``forward_members`` returns member logits of
shape ``(M, B, C)``; the predictive distribution is the mean of the member softmaxes.

Methods never read files, know data sets or print: everything data-related comes through the
``Task`` protocol, which the benchmark implements.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .transformer import StreamTransformer

Inputs = Tensor | dict[str, Tensor]


def derive_seed(seed: int, purpose: str, index: int = 0) -> int:
    """The one derivation of every secondary seed (ensemble members, epochs, fine-tuning) from
    a job's seed: a 31-bit hash of (seed, purpose, index). Each purpose is its own stream, so
    no two purposes, members or epochs share a seed by arithmetic accident."""
    digest = hashlib.sha256(f"{purpose}|{seed}|{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class ConfigError(ValueError):
    """Invalid hyper-parameters, also those found invalid only against the task's model in
    ``fit`` (e.g. more heads per member than a layer has). The runner stops on it (exit 2)
    instead of recording a failed job."""


class Task(Protocol):
    """What a method may ask of a task (implemented in ``bench.tasks``)."""

    name: str
    seed: int  # the job's seed; methods derive member seeds from it
    num_classes: int
    trainable: bool  # False for zero-shot tasks: no training data may be used for gradient steps
    modality: str  # "image" or "text": what batches() yields
    pretrained: bool  # whether backbone() carries pretrained weights (else random, from scratch)
    epochs: float  # the task's training budget for one model
    device: torch.device

    def backbone(self, seed: int, **overrides: Any) -> StreamTransformer:
        """A fresh model: pretrained weights where the task has them, else random (seeded).
        ``overrides`` are config keys to change (e.g. ``dropout=0.1``)."""

    def train(
        self,
        model: nn.Module,
        seed: int,
        epochs: float | None = None,
        lr_scale: float = 1.0,
        member: int = 0,
    ) -> nn.Module:
        """Train ``model`` (whose forward returns ``(M, B, C)``) with the task's recipe, mean
        cross-entropy over members. Within a job the result is cached under a key the task
        derives from its training config, the method's registry name and training
        hyper-parameters, ``member`` (which of the method's trainings this is) and ``seed``,
        so that a resumed run does not train it again."""

    def single_model(self, seed: int) -> StreamTransformer:
        """The task's single model: ``backbone(seed)`` trained with the full recipe (cached)."""

    def batches(self, split: str, seed: int, limit: int | None = None) -> Iterable[tuple[Inputs, Tensor]]:
        """Batches on ``task.device`` from ``'train'``, ``'val'`` or ``'ood_val'`` (labels -1)."""

    def has_split(self, split: str) -> bool:
        """Whether ``batches(split)`` yields anything."""


class UQMethod:
    """Base class of every uncertainty-quantification method."""

    name: ClassVar[str] = ""
    needs_training: ClassVar[bool] = True  # False: applies to zero-shot tasks as it is
    modalities: ClassVar[tuple[str, ...]] = ("image", "text")  # the task modalities it applies to
    inference_only: ClassVar[tuple[str, ...]] = ()  # hyper-parameters that never change trained weights
    # facts of ``extra_`` worth showing beside the method's results, as
    # {key: (short title, sentence where "{}" takes the value over seeds)}; the report names no key itself
    display_notes: ClassVar[dict[str, tuple[str, str]]] = {}

    models_: nn.ModuleList | None = None  # set by fit
    extra_: dict[str, Any] | None = None  # JSON-able facts about the fit (e.g. head sets)

    # -- hyper-parameters -------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.param_names()}

    def training_params(self) -> dict[str, Any]:
        """The hyper-parameters that can change trained weights (they key its checkpoints)."""
        return {k: v for k, v in self.get_params().items() if k not in self.inference_only}

    def validate(self) -> None:
        """Raise ``ConfigError`` with a one-line reason for invalid hyper-parameters."""

    # -- the contract -----------------------------------------------------------------
    def fit(self, task: Task) -> UQMethod:
        raise NotImplementedError

    @functools.cached_property
    def num_members(self) -> int:
        """Members M of the fitted method. A method whose ensemble size is a hyper-parameter of
        the same name stores it as a plain attribute, which takes precedence (a cached
        property is a non-data descriptor)."""
        return sum(m.num_members for m in self._fitted())

    def forward_members(self, x: Inputs) -> Tensor:
        """Member logits ``(M, B, C)``."""
        return torch.cat([m(x) for m in self._fitted()], dim=0)

    @torch.no_grad()
    def predict_proba(self, x: Inputs) -> Tensor:
        """Mean of member softmaxes, ``(B, C)``."""
        return self.forward_members(x).float().softmax(-1).mean(0)

    def eval(self) -> UQMethod:
        self._fitted().eval()
        return self

    def to(self, device: torch.device | str) -> UQMethod:
        self._fitted().to(device)
        return self

    def inference_networks(self, backbone: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
        """``(config, runs per forward_members call)`` of each network this method holds once
        fitted on a task whose backbone has config ``backbone``, derived without fitting: what
        the analytic cost model (``methods.flops``) counts."""
        raise NotImplementedError(f"{self.name}: inference_networks is not implemented")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self._fitted().parameters())

    def _fitted(self) -> nn.ModuleList:
        if self.models_ is None:
            raise RuntimeError(f"{self.name}: call fit(task) first")
        return self.models_

    # -- persistence: safetensors + JSON, never pickle ------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "method": self.name,
            "params": self.get_params(),
            "configs": [m.config for m in self._fitted()],
            "extra": self.extra_ or {},
        }
        state = {k: v.contiguous() for k, v in self._fitted().state_dict().items()}
        save_file(state, str(path / "model.safetensors"))
        (path / "method.json").write_text(json.dumps(meta, indent=1, sort_keys=True))

    def _after_load(self) -> None:
        """Hook for methods that set runtime flags on their networks."""

    @classmethod
    def build_network(cls, config: dict[str, Any]) -> nn.Module:
        """An unfitted network from the ``config`` that ``save`` recorded (``load`` fills in the
        weights); a method whose networks are not ``StreamTransformer``s overrides it."""
        return StreamTransformer(config)


REGISTRY: dict[str, type[UQMethod]] = {}


def register(cls: type[UQMethod]) -> type[UQMethod]:
    """Class decorator: add a method to the registry under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    REGISTRY[cls.name] = cls
    return cls


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> ValueError:
    """A one-line error for an unknown registry name, with the close matches."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})")


def create(name: str, **params: Any) -> UQMethod:
    """Build a registered method from its name and keyword hyper-parameters."""
    if name not in REGISTRY:
        raise unknown_name("method", name, REGISTRY)
    cls = REGISTRY[name]
    bad = sorted(set(params) - set(cls.param_names()))
    if bad:
        raise ConfigError(f"method {name!r} has no hyper-parameter {', '.join(bad)} "
                         f"(valid: {', '.join(cls.param_names())})")
    method = cls(**params)
    method.validate()
    return method


def load(path: str | Path) -> UQMethod:
    """Load a fitted method saved by ``UQMethod.save`` (safetensors; no code is unpickled)."""
    path = Path(path)
    meta = json.loads((path / "method.json").read_text())
    method = create(meta["method"], **meta["params"])
    method.models_ = nn.ModuleList(type(method).build_network(c) for c in meta["configs"])
    method.models_.load_state_dict(load_file(str(path / "model.safetensors")))
    method.extra_ = meta["extra"]
    method._after_load()
    return method.eval()
