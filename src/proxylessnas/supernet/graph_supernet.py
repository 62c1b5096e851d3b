"""``GraphSuperNet``: the supernet of a graph space (``space/graph.py``), e.g. NAS-Bench-201.

Every searched edge is a :class:`~proxylessnas.supernet.mixed_op.MixedOp` over its decision's
candidates, without shortcut (a zero candidate outputs zeros: the edge contributes 0); fixed
edges are their op's module. One logit vector per searched decision (``alphas``, in
``space.decisions`` order) drives all of its edges: the same candidate runs on each of them,
and their gate gradients add up in the shared alpha (supernet/base.py). Nodes sum their
incoming edges, the head reads the output node, exactly as the standalone
:class:`~proxylessnas.nets.graph_net.GraphNet`, whose modules are built by the same op registry
(:func:`~proxylessnas.nets.op_registry.build_op`), so :meth:`derive` copies weights key for key.

Initialisation: with ``identity_init`` (default) every same-shape conv candidate starts as the
identity (supernet/init.py, :func:`~proxylessnas.supernet.init.identity_init_edge_convs`).

BatchNorm: affine with running statistics, as the standalone net (the benchmark's own search
nets drop the affine parameters; keeping them lets the derived net inherit every weight).
"""

from __future__ import annotations

import torch
from torch import nn

from proxylessnas.nets.graph_net import GraphNet
from proxylessnas.nets.net import build_net
from proxylessnas.nets.op_registry import build_op
from proxylessnas.space.arch import Arch
from proxylessnas.space.graph import GraphSpace
from proxylessnas.supernet.base import ALPHA_INIT_STD, DecisionSuperNet
from proxylessnas.supernet.init import identity_init_edge_convs
from proxylessnas.supernet.mixed_op import MixedOp, candidate_modules


class GraphSuperNet(DecisionSuperNet):
    """Mixed edges sharing one alpha per decision; the protocol of :class:`DecisionSuperNet`."""

    def __init__(self, space: GraphSpace, num_classes: int | None = None,
                 mixed_op: str = "binary", identity_init: bool = True) -> None:
        super().__init__(space, num_classes, mixed_op)
        position = {d.label: k for k, d in enumerate(space.decisions)}
        self.alphas = nn.ParameterList([nn.Parameter(torch.zeros(len(d.candidates)))
                                        for d in space.decisions])
        modules: list[nn.Module] = []
        self.decision_ops: list[list[MixedOp]] = [[] for _ in space.decisions]
        for edge in space.edges:
            if edge.decision in position:
                k = position[edge.decision]
                bodies = candidate_modules(space.decisions[k].candidates, edge.in_chs, edge.out_chs,
                                           edge.stride, space.bn)
                mixed = MixedOp(bodies, shortcut=False, label=edge.label, own_alpha=False,
                                out_chs=edge.out_chs, stride=edge.stride)
                self.decision_ops[k].append(mixed)
                modules.append(mixed)
            else:
                op = edge.op if edge.op is not None else space.decision(edge.decision).candidates[0]
                modules.append(build_op(op, edge.in_chs, edge.out_chs, edge.stride, space.bn))
        self.edges = nn.ModuleList(modules)
        self.head = build_op(space.head.op, space.head.in_chs, self.num_classes, 1, space.bn)
        with torch.no_grad():
            for alpha in self.alphas:
                alpha.normal_(0.0, ALPHA_INIT_STD)
        if identity_init:
            identity_init_edge_convs([mixed for ops in self.decision_ops for mixed in ops])
        self._start_sampling()

    def arch_parameters(self) -> list[nn.Parameter]:
        """One logit vector per searched decision, in ``space.decisions`` order."""
        return list(self.alphas)

    # -- deriving -----------------------------------------------------------------------------
    def derive(self, arch: Arch | None = None, inherit: bool = True) -> GraphNet:
        """A fresh standalone net of ``arch`` (default: :meth:`export`); with ``inherit`` every
        non-zero edge takes its chosen candidate's weights and BatchNorm statistics, and the head
        its own, so both give the same outputs in eval mode."""
        arch = self.export() if arch is None else arch
        arch.validate(self.space)
        reference = self.head.linear.weight
        net = build_net(self.space, arch, self.num_classes).to(reference.device, reference.dtype)
        if not inherit:
            return net
        ops = self.space.edge_ops(arch.choices)
        for edge, module, target, op in zip(self.space.edges, self.edges, net.edges, ops):
            if target is None:
                continue
            source = module.body(self.space.decision(edge.decision).index(op)) \
                if isinstance(module, MixedOp) else module
            target.load_state_dict(source.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        return net

    # -- forward ------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output node: ``x_dst = sum over edges into dst of edge(x_src)``, in edge order."""
        values = {self.space.nodes[0]: x}
        for edge, module in zip(self.space.edges, self.edges):
            out = module(values[edge.src])
            values[edge.dst] = out if edge.dst not in values else values[edge.dst] + out
        return values[self.space.output]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the currently sampled or fixed path(s)."""
        return self.head(self.forward_features(x))
