"""``Arch``: one chosen op per searched layer of a space, as JSON.

File format (schema_version 1)::

    {"schema_version": 1, "space": "proxyless-imagenet", "space_overrides": {},
     "choices": {"s1.b0": "mb_k5_e3", "s1.b1": "zero", ...}, "metadata": {...}}

``space`` and ``space_overrides`` rebuild the space with ``get_space``; ``choices`` names one op
for every searched layer (fixed layers may be listed with their only candidate);
``metadata`` is free-form (probabilities, predicted latency, provenance).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.space.ops import OpSpec, parse_op
from proxylessnas.space.spec import SCHEMA_VERSION, SearchSpace


@dataclass(frozen=True)
class Arch:
    space: str
    choices: dict[str, OpSpec]
    space_overrides: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_ops(cls, space: SearchSpace, ops, metadata: dict | None = None) -> Arch:
        """An arch from one op (token or OpSpec) per searched layer, in order."""
        layers = space.searched_layers
        ops = list(ops)
        if len(ops) != len(layers):
            raise ProxylessError(f"{len(ops)} ops for {len(layers)} searched layers", space.name,
                                 "give one op per searched layer")
        choices = {layer.label: op if not isinstance(op, str) else parse_op(op, layer.label)
                   for layer, op in zip(layers, ops)}
        arch = cls(space.name, choices, dict(space.overrides), dict(metadata or {}))
        arch.validate(space)
        return arch

    def op(self, space: SearchSpace, label: str) -> OpSpec:
        """The op of any layer (fixed layers take their only candidate)."""
        layer = space.layer(label)
        return self.choices[label] if layer.searchable else layer.candidates[0]

    def ops(self, space: SearchSpace) -> list[OpSpec]:
        """The op of every layer of the space, fixed ones included, in chain order."""
        return [self.op(space, layer.label) for layer in space.layers]

    def indices(self, space: SearchSpace) -> list[int]:
        """Candidate index of the chosen op, per searched layer."""
        return [layer.index(self.choices[layer.label]) for layer in space.searched_layers]

    def resolve_space(self) -> SearchSpace:
        from proxylessnas.space.presets import get_space

        space = get_space(self.space, **self.space_overrides)
        self.validate(space)
        return space

    def validate(self, space: SearchSpace, where: str = "arch") -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ProxylessError(f"unsupported arch schema_version {self.schema_version!r}",
                                 where, f"this version reads schema_version {SCHEMA_VERSION}")
        if self.space != space.name:
            raise ProxylessError(f"arch is for space '{self.space}', not '{space.name}'", where,
                                 f"use an arch searched in '{space.name}'")
        labels = {layer.label for layer in space.layers}
        unknown = sorted(set(self.choices) - labels)
        if unknown:
            raise ProxylessError(f"unknown layer label(s) {', '.join(unknown)}", where,
                                 f"space '{space.name}' has layers {', '.join(sorted(labels))}")
        missing = [layer.label for layer in space.searched_layers if layer.label not in self.choices]
        if missing:
            raise ProxylessError(f"no op chosen for layer(s) {', '.join(missing)}", where,
                                 "give one op for every searched layer")
        for label, op in self.choices.items():
            layer = space.layer(label)
            if op not in layer.candidates:
                allowed = ", ".join(c.token for c in layer.candidates)
                raise ProxylessError(f"op '{op.token}' is not a candidate of layer {label}",
                                     where, f"choose one of {allowed}")

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "space": self.space,
                "space_overrides": dict(self.space_overrides),
                "choices": {label: op.token for label, op in self.choices.items()},
                "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "arch") -> Arch:
        if not isinstance(data, dict):
            raise ProxylessError("arch must be a JSON object", where,
                                 'write {"space": ..., "choices": {...}}')
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ProxylessError(f"unsupported arch schema_version {version!r}", where,
                                 f"set \"schema_version\": {SCHEMA_VERSION}")
        for key in ("space", "choices"):
            if key not in data:
                raise ProxylessError(f"arch has no '{key}'", where, f"add a '{key}' entry")
        unknown = sorted(set(data) - {"schema_version", "space", "space_overrides", "choices",
                                      "metadata"})
        if unknown:
            raise ProxylessError(f"unknown arch key(s) {', '.join(unknown)}", where,
                                 "remove them")
        if not isinstance(data["choices"], dict):
            raise ProxylessError("'choices' must map layer labels to ops", where,
                                 'write {"s1.b0": "mb_k5_e3", ...}')
        choices = {str(k): parse_op(v, f"{where}: {k}") for k, v in data["choices"].items()}
        return cls(str(data["space"]), choices, dict(data.get("space_overrides") or {}),
                   dict(data.get("metadata") or {}), version)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, space: SearchSpace | None = None) -> Arch:
        """Load and validate (against ``space``, or the space the file names)."""
        data = read_json(path, "arch file")
        arch = cls.from_dict(data, str(path))
        if space is None:
            space = arch.resolve_space()
        arch.validate(space, str(path))
        return arch


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise ProxylessError(f"{what} not found", str(path), "check the path")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ProxylessError(f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}",
                             str(path), "fix the JSON syntax") from None
    except UnicodeDecodeError:
        raise ProxylessError("not a text file", str(path), f"give a JSON {what}") from None


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON to a temporary file beside ``path``, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
