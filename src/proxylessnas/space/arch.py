"""``Arch``: one chosen op per decision of a space, as JSON.

File format (schema_version 2)::

    {"schema_version": 2, "space": "proxyless-imagenet", "space_overrides": {},
     "choices": {"s1.b0": "mb_k5_e3", "s1.b1": "zero", ...}, "metadata": {...}}

``space`` and ``space_overrides`` rebuild the space with ``get_space``; ``choices`` names one op
for every searched decision: a chain's decisions are its layers (fixed layers may be listed with
their only candidate), a graph space's (``space/graph.py``) are its decision labels, e.g.
``{"1<-0": "nor_conv_3x3", "2<-0": "none", ...}`` for ``nasbench201``. ``metadata`` is
free-form (probabilities, predicted latency, provenance).

Version 2 added graph spaces; the file shape is unchanged, so version-1 files (chains) load
and are upgraded to version 2 in memory (saving writes 2).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import singledispatch
from pathlib import Path
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.runtime.atomic import write_json_atomic
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.ops import OpSpec, parse_op
from proxylessnas.space.spec import SearchSpace

ARCH_SCHEMA_VERSION = 2
READABLE_ARCH_VERSIONS = (1, 2)
Space = SearchSpace | GraphSpace


@singledispatch
def choice_points(space) -> tuple[tuple, str]:
    """(everything ``choices`` may name, what it is called): a chain's layers (fixed ones
    included), a graph's decisions (fixed ones included). Each has ``label``, ``candidates``,
    ``searchable``."""
    raise TypeError(f"not a search space: {type(space).__name__}")


@choice_points.register
def _chain_points(space: SearchSpace) -> tuple[tuple, str]:
    return space.layers, "layer"


@choice_points.register
def _graph_points(space: GraphSpace) -> tuple[tuple, str]:
    return space.all_decisions, "decision"


@dataclass(frozen=True)
class Arch:
    space: str
    choices: dict[str, OpSpec]
    space_overrides: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = ARCH_SCHEMA_VERSION

    @classmethod
    def from_ops(cls, space: Space, ops, metadata: dict | None = None) -> Arch:
        """An arch from one op (token or OpSpec) per searched layer or decision, in order."""
        layers = space.searched_layers
        ops = list(ops)
        if len(ops) != len(layers):
            _, noun = choice_points(space)
            raise ProxylessError(f"{len(ops)} ops for {len(layers)} searched {noun}s", space.name,
                                 f"give one op per searched {noun}")
        choices = {layer.label: op if not isinstance(op, str) else parse_op(op, layer.label)
                   for layer, op in zip(layers, ops)}
        arch = cls(space.name, choices, dict(space.overrides), dict(metadata or {}))
        arch.validate(space)
        return arch

    def op(self, space: Space, label: str) -> OpSpec:
        """The op of any layer or decision (fixed ones take their only candidate)."""
        points, noun = choice_points(space)
        for point in points:
            if point.label == label:
                return self.choices[label] if point.searchable else point.candidates[0]
        raise ProxylessError(f"no {noun} '{label}'", space.name,
                             f"use one of {', '.join(p.label for p in points)}")

    def ops(self, space: Space) -> list[OpSpec]:
        """The op of every layer (chain order) or decision (alpha order), fixed ones included."""
        return [self.op(space, point.label) for point in choice_points(space)[0]]

    def indices(self, space: Space) -> list[int]:
        """Candidate index of the chosen op, per searched layer or decision."""
        return [layer.index(self.choices[layer.label]) for layer in space.searched_layers]

    def resolve_space(self) -> Space:
        from proxylessnas.space.presets import get_space

        space = get_space(self.space, **self.space_overrides)
        self.validate(space)
        return space

    def validate(self, space: Space, where: str = "arch") -> None:
        if self.schema_version not in READABLE_ARCH_VERSIONS:
            raise ProxylessError(f"unsupported arch schema_version {self.schema_version!r}",
                                 where, f"this version reads schema_version {ARCH_SCHEMA_VERSION}")
        if self.space != space.name:
            raise ProxylessError(f"arch is for space '{self.space}', not '{space.name}'", where,
                                 f"use an arch searched in '{space.name}'")
        points, noun = choice_points(space)
        by_label = {point.label: point for point in points}
        unknown = sorted(set(self.choices) - set(by_label))
        if unknown:
            raise ProxylessError(f"unknown {noun} label(s) {', '.join(unknown)}", where,
                                 f"space '{space.name}' has {noun}s {', '.join(sorted(by_label))}")
        missing = [layer.label for layer in space.searched_layers if layer.label not in self.choices]
        if missing:
            raise ProxylessError(f"no op chosen for {noun}(s) {', '.join(missing)}", where,
                                 f"give one op for every searched {noun}")
        for label, op in self.choices.items():
            point = by_label[label]
            if op not in point.candidates:
                allowed = ", ".join(c.token for c in point.candidates)
                raise ProxylessError(f"op '{op.token}' is not a candidate of {noun} {label}",
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
        if version not in READABLE_ARCH_VERSIONS or isinstance(version, bool):
            raise ProxylessError(f"unsupported arch schema_version {version!r}", where,
                                 f"set \"schema_version\": {ARCH_SCHEMA_VERSION}")
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
        if not isinstance(data["space"], str):
            raise ProxylessError(f"'space' must be a space name, not {data['space']!r}", where,
                                 'write "space": "proxyless-cifar" (see proxyless space list)')
        for key in ("space_overrides", "metadata"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                raise ProxylessError(f"'{key}' must be an object", where, f'write "{key}": {{...}}')
        choices = {str(k): parse_op(v, f"{where}: {k}") for k, v in data["choices"].items()}
        return cls(data["space"], choices, dict(data.get("space_overrides") or {}),
                   dict(data.get("metadata") or {}), ARCH_SCHEMA_VERSION)

    def save(self, path: str | os.PathLike) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, space: Space | None = None) -> Arch:
        """Load and validate (against ``space``, or the space the file names)."""
        data = read_json(path, "arch file")
        arch = cls.from_dict(data, str(path))
        if space is None:
            space = arch.resolve_space()
        arch.validate(space, str(path))
        return arch


def load_arch_or_string(text: str | os.PathLike, space: Space | None = None) -> Arch:
    """An arch from an arch JSON file or a NAS-Bench-201 string (``|op~0|+|op~0|op~1|+...``).

    A string is read in ``space`` when given (a ``nasbench201`` space), else in the preset."""
    from proxylessnas.space.nasbench201 import arch_from_string, is_arch_string

    if isinstance(text, str) and is_arch_string(text):
        return arch_from_string(text, space)
    if not Path(text).exists():
        raise ProxylessError("arch file not found", str(text),
                             "give an arch JSON file or a NAS-Bench-201 string such as "
                             "'|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
                             "nor_conv_3x3~1|nor_conv_1x1~2|'")
    return Arch.load(text, space)


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON in ``path``; a missing file, a folder, bytes that are not JSON text or JSON nested or
    sized past the parser's limits is a ProxylessError naming ``what`` was expected."""
    path = Path(path)
    if path.is_dir():
        raise ProxylessError(f"{what} path is a folder", str(path), f"give the {what} file")
    if not path.is_file():
        raise ProxylessError(f"{what} not found", str(path), "check the path")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ProxylessError(f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}",
                             str(path), "fix the JSON syntax") from None
    except UnicodeDecodeError:
        raise ProxylessError("not a text file", str(path), f"give a JSON {what}") from None
    except (RecursionError, ValueError) as err:  # nesting too deep, an integer of thousands of digits
        raise ProxylessError(f"JSON beyond the parser's limits ({str(err).splitlines()[0][:80]})", str(path),
                             f"give a JSON {what}") from None
