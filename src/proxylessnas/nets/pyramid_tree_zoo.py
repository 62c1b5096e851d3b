"""The paper's CIFAR-10 model, ``proxyless_cifar``: an arch of the ``pyramid-tree`` space.

ProxylessNAS (Cai et al., ICLR 2019; PAPER.md section 5): 2.08 % CIFAR-10 test error with 5.7M
parameters; a PyramidNet backbone (N = 18 blocks a stage, alpha = 84, bottleneck 4) whose every block holds
its own tree cell (``space/pyramid_tree.py``). Here: 5,731,530 parameters and 1,213.2 M MACs at
32x32, as the reference release's net builds it.

Each cell is written as 17 characters, one per leaf edge, branch 0 then branch 1::

    "7m.di.7m 5d.55.77"   branch 0: e00 e01 . e000 e001 . e010 e011   branch 1: e10 e11 . ...

(level-2 edges, then the two level-3 edges under each of them). Codes: ``3 5 7`` sep_conv_kxk,
``d`` dil_conv_3x3, ``a`` avg_pool_3x3, ``m`` max_pool_3x3, ``i`` skip_connect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from proxylessnas.errors import ProxylessError
from proxylessnas.nets.graph_net import GraphNet, GraphNetConfig, graph_net_config
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace
from proxylessnas.space.presets import get_space
from proxylessnas.space.pyramid_tree import LEAF_PATHS, NAME, block_label

LEAF_CODES = {"3": "sep_conv_3x3", "5": "sep_conv_5x5", "7": "sep_conv_7x7", "d": "dil_conv_3x3",
              "a": "avg_pool_3x3", "m": "max_pool_3x3", "i": "skip_connect"}
_CODE_OF = {token: code for code, token in LEAF_CODES.items()}
_CELL_FORM = "xx.xx.xx xx.xx.xx"
# position of each character of the cell form, in LEAF_PATHS order
_SLOTS = {"00": 0, "01": 1, "000": 3, "001": 4, "010": 6, "011": 7,
          "10": 9, "11": 10, "100": 12, "101": 13, "110": 15, "111": 16}

PROXYLESS_CIFAR_CELLS = (
    "7m.di.7m 5d.55.77", "ai.aa.3i m7.di.dd", "7i.3a.5a 3d.3a.d5", "a5.5d.3d d7.73.i7",
    "ai.5d.d5 7m.7a.im", "7m.7m.35 a7.d3.ii", "dm.im.77 77.53.ii", "dd.57.57 m5.aa.37",
    "7d.5m.ii mm.3a.ad", "5i.3i.37 3i.57.57", "7a.75.35 di.ad.d3", "5d.a5.33 a5.77.d3",
    "mm.73.7d 3m.a5.7i", "37.md.7d 5d.i3.73", "da.m3.dd ai.5i.5i", "5i.d5.aa d5.55.73",
    "75.55.d3 id.m7.37", "md.ii.3i 7m.57.id", "dm.5a.a7 5a.73.am", "7d.i7.i7 dm.37.m5",
    "md.a3.id mm.m5.ia", "da.73.a3 3a.7i.dd", "dm.ma.7i 7d.di.am", "75.m7.mi mi.ad.m7",
    "i5.a5.m5 dd.7a.dm", "3i.ad.dd d3.aa.a3", "d7.m7.im mm.55.5d", "37.73.ai m7.37.mm",
    "75.77.a3 33.id.a3", "5i.ai.a5 a7.3a.am", "i3.ad.i7 ia.7m.id", "7m.5i.7d m7.dm.77",
    "37.m3.i3 53.i3.5i", "d7.d3.d7 3i.3d.mi", "mi.i5.5a 37.ai.ad", "7m.75.da 73.75.55",
    "aa.aa.da 7i.5i.ia", "m7.ia.5i ii.ai.7i", "d3.7m.i5 ai.3i.ma", "77.a5.a3 mi.a3.mm",
    "ii.a7.i7 im.a5.a7", "di.5i.m5 75.d7.id", "mm.ia.am da.i5.3i", "77.57.7a d7.3m.7a",
    "da.dm.d3 7d.id.m5", "ad.am.3m di.7d.ai", "mm.a7.33 5d.ai.i3", "5d.7d.im m7.35.mi",
    "77.3m.da m5.mm.5m", "m5.ia.d3 53.73.77", "i3.a5.77 i7.77.3a", "5m.53.ai 55.am.5i",
    "3m.d3.ma i7.md.33", "77.3m.5i 5m.m3.37",
)
"""The 54 cells of the published model, block s1.b0 first."""


def decode_cell(text: str, where: str = "cell") -> list[str]:
    """The 12 leaf ops of one cell string, in decision order (``LEAF_PATHS``)."""
    if not isinstance(text, str) or len(text) != len(_CELL_FORM) or any(
            (f == "x") != (c in LEAF_CODES) or (f != "x" and f != c) for f, c in zip(_CELL_FORM, text)):
        raise ProxylessError(f"malformed cell string {text!r}", where,
                             f"write {_CELL_FORM!r} with x one of {''.join(LEAF_CODES)}")
    return [LEAF_CODES[text[_SLOTS[path]]] for path in LEAF_PATHS]


def encode_cell(tokens: Sequence[str], where: str = "cell") -> str:
    """The cell string of 12 leaf ops in decision order (inverse of :func:`decode_cell`)."""
    tokens = [str(t) for t in tokens]
    unknown = [t for t in tokens if t not in _CODE_OF]
    if len(tokens) != len(LEAF_PATHS) or unknown:
        raise ProxylessError(f"cannot write {len(tokens)} ops ({', '.join(unknown) or 'ok'}) as a cell "
                             "string", where, f"give {len(LEAF_PATHS)} of {', '.join(_CODE_OF)}")
    text = list(_CELL_FORM)
    for path, token in zip(LEAF_PATHS, tokens):
        text[_SLOTS[path]] = _CODE_OF[token]
    return "".join(text)


def cells_arch(space: GraphSpace, cells: Sequence[str], metadata: dict | None = None) -> Arch:
    """The arch of one cell string per block of a ``pyramid-tree`` space."""
    blocks = len({d.label.rsplit(".", 1)[0] for d in space.all_decisions})
    if len(cells) != blocks:
        raise ProxylessError(f"{len(cells)} cells for {blocks} blocks", space.name, "give one cell per block")
    per_stage = blocks // 3
    choices = {f"{block_label(i, per_stage)}.e{path}": token for i, cell in enumerate(cells)
               for path, token in zip(LEAF_PATHS, decode_cell(cell, f"cell {i}"))}
    return Arch.from_ops(space, [choices[d.label] for d in space.decisions], metadata)


@dataclass(frozen=True)
class TreeZooEntry:
    """A published net of the ``pyramid-tree`` space: its cells and backbone sizes."""

    name: str
    description: str
    cells: tuple[str, ...]
    space_options: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    published: dict[str, float] = field(default_factory=dict)
    default_num_classes: int = 10
    default_resolution: int = 32

    def space(self, num_classes: int | None = None, resolution: int | None = None,
              **options: Any) -> GraphSpace:
        return get_space(NAME, num_classes=num_classes or self.default_num_classes,
                         resolution=resolution or self.default_resolution, **self.space_options, **options)

    def arch(self, num_classes: int | None = None, resolution: int | None = None, **options: Any) -> Arch:
        return cells_arch(self.space(num_classes, resolution, **options), self.cells, {"zoo": self.name})

    def net_config(self, num_classes: int | None = None, resolution: int | None = None,
                   **options: Any) -> GraphNetConfig:
        space = self.space(num_classes, resolution, **options)
        return graph_net_config(space, cells_arch(space, self.cells, {"zoo": self.name}),
                                dropout=self.dropout, name=self.name)

    def create(self, num_classes: int | None = None, resolution: int | None = None,
               **options: Any) -> GraphNet:
        return GraphNet(self.net_config(num_classes, resolution, **options))


PROXYLESS_CIFAR = TreeZooEntry(
    "proxyless_cifar", "CIFAR-10: tree cells on PyramidNet (N=18, alpha=84), paper's 2.08 % error",
    PROXYLESS_CIFAR_CELLS, {"blocks_per_stage": 18, "alpha": 84, "bottleneck": 4, "stem_width": 16},
    0.0, {"params_m": 5.7, "test_error": 2.08})
