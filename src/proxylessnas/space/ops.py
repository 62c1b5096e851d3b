"""Op-string grammar: the candidates of a searched layer, written as short tokens.

Grammar (one op)::

    op     := mbconv | "zero"
    mbconv := "mb_k" KERNEL "_e" EXPAND       e.g. mb_k5_e6: 5x5 depthwise, expand ratio 6

KERNEL is an odd integer >= 1, EXPAND an integer >= 1. Stride and channels belong to the layer,
not to the op. ``zero`` skips the block (the layer becomes the identity); it is legal only where
the layer has stride 1 and in == out channels.

A candidate list may use brace expansion and commas: ``"mb_k{3,5,7}_e{3,6},zero"`` expands to
seven ops, in order (the rightmost brace varies fastest). ``format_op(parse_op(s)) == s``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from proxylessnas.errors import ProxylessError

_MB_RE = re.compile(r"^mb_k(\d+)_e(\d+)$")


@dataclass(frozen=True, order=True)
class MBConvOp:
    """Inverted-residual block: 1x1 expand (if expand_ratio > 1), kxk depthwise, 1x1 project."""

    kernel_size: int
    expand_ratio: int

    @property
    def token(self) -> str:
        return f"mb_k{self.kernel_size}_e{self.expand_ratio}"

    @property
    def is_zero(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.token


@dataclass(frozen=True, order=True)
class ZeroOp:
    """Skip the block: the layer computes the identity (only where stride 1 and in == out)."""

    @property
    def token(self) -> str:
        return "zero"

    @property
    def is_zero(self) -> bool:
        return True

    def __str__(self) -> str:
        return self.token


OpSpec = MBConvOp | ZeroOp
ZERO = ZeroOp()


def parse_op(text: str, where: str = "op string") -> OpSpec:
    """Parse one op token; the error names the bad token and shows the grammar."""
    token = text.strip() if isinstance(text, str) else text
    if not isinstance(token, str):
        raise ProxylessError(f"op must be a string, got {type(text).__name__}", where,
                             "write ops as 'mb_k<kernel>_e<expand>' or 'zero'")
    if token == "zero":
        return ZERO
    match = _MB_RE.match(token)
    if match is None:
        raise ProxylessError(f"unknown op '{token}'", where,
                             "write ops as 'mb_k<kernel>_e<expand>' (e.g. mb_k5_e6) or 'zero'")
    kernel, expand = int(match.group(1)), int(match.group(2))
    if kernel < 1 or kernel % 2 == 0:
        raise ProxylessError(f"bad kernel size {kernel} in op '{token}'", where,
                             "use an odd kernel size such as 3, 5 or 7")
    if expand < 1:
        raise ProxylessError(f"bad expand ratio {expand} in op '{token}'", where,
                             "use an expand ratio >= 1")
    return MBConvOp(kernel, expand)


def format_op(op: OpSpec) -> str:
    """The canonical token of an op (inverse of :func:`parse_op`)."""
    return op.token


def _split_top_level(text: str, where: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise ProxylessError(f"unbalanced '}}' in '{text}'", where, "balance the braces")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ProxylessError(f"unbalanced '{{' in '{text}'", where, "balance the braces")
    parts.append("".join(current))
    return [p.strip() for p in parts]


def expand_braces(pattern: str, where: str = "op list") -> list[str]:
    """``"mb_k{3,5}_e{3,6},zero"`` -> ``["mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6", "zero"]``."""
    out: list[str] = []
    for part in _split_top_level(pattern, where):
        if not part:
            raise ProxylessError(f"empty op in '{pattern}'", where, "remove the extra comma")
        pieces = re.split(r"(\{[^{}]*\})", part)
        if any("{" in p or "}" in p for p in pieces[::2]):
            raise ProxylessError(f"nested or unbalanced braces in '{part}'", where,
                                 "use flat braces such as mb_k{3,5}_e{3,6}")
        choices = [[v.strip() for v in p[1:-1].split(",")] if p.startswith("{") else [p]
                   for p in pieces]
        out.extend("".join(combo) for combo in itertools.product(*choices))
    return out


def parse_ops(pattern: str | list[str] | tuple[str, ...], where: str = "op list") -> tuple[OpSpec, ...]:
    """Parse a candidate list (a brace pattern or a list of tokens); duplicates are an error."""
    tokens = expand_braces(pattern, where) if isinstance(pattern, str) else \
        [t for p in pattern for t in expand_braces(p, where)]
    ops = tuple(parse_op(t, where) for t in tokens)
    seen = set()
    for op in ops:
        if op in seen:
            raise ProxylessError(f"duplicate op '{op.token}'", where, "list each op once")
        seen.add(op)
    return ops
