"""The op registry: one family per op type builds, counts and keys it; every caller agrees."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.flops import key_params_macs
from proxylessnas.hardware.keys import KINDS, LayerKey, key_of, key_op
from proxylessnas.hardware.measure import build_block
from proxylessnas.nets.op_registry import (
    KEY_KINDS,
    build_op,
    op_from_key,
    op_key_fields,
    op_params_macs,
)
from proxylessnas.ops.blocks import MBConv, Residual
from proxylessnas.space.ops import HEAD_CONV, ClassifierOp, PoolHeadOp, StemOp, parse_ops
from proxylessnas.space.shapes import Shape

# (op, in_chs, out_chs, stride) covering every family
CASES = [
    *((op, 8, 8, 1) for op in parse_ops("mb_k{3,5}_e{1,3},skip_connect,nor_conv_{1x1,3x3},avg_pool_3x3")),
    *((op, 8, 16, 2) for op in parse_ops("mb_k3_e6,nor_conv_3x3,conv_bn_3x3,res_block_3x3")),
    (parse_ops("res_block_3x3")[0], 8, 16, 1),
    (StemOp(3), 3, 8, 2), (HEAD_CONV, 8, 32, 1), (ClassifierOp(), 32, 10, 1),
    (PoolHeadOp(True), 8, 10, 1), (PoolHeadOp(False), 8, 10, 1),
    *((op, 8, 8, 1) for op in parse_ops("sep_conv_{3x3,5x5},dil_conv_3x3,max_pool_3x3,bn,chunk_0,pad_skip")),
    *((op, 8, 16, 2) for op in parse_ops("sep_conv_3x3,bn_conv_1x1,bn_relu_conv_3x3_g2,pad_skip")),
    (parse_ops("chunk_1")[0], 16, 8, 1),
]


def _ids(case):
    return f"{case[0].token}-{case[1]}-{case[2]}-s{case[3]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_counts_match_the_module(case):
    op, in_chs, out_chs, stride = case
    module = build_op(op, in_chs, out_chs, stride).eval()
    params, macs = op_params_macs(op, in_chs, out_chs, stride, 8, 6)
    assert params == sum(p.numel() for p in module.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.randn(1, in_chs, 8, 6))
    assert counter.get_total_flops() == 2 * macs


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_key_fields_round_trip(case):
    op, in_chs, out_chs, stride = case
    kind, kernel, expand = op_key_fields(op)
    assert kind in KEY_KINDS
    back = op_from_key(kind, kernel, expand)
    assert op_key_fields(back) == (kind, kernel, expand)
    shape = (in_chs, out_chs, stride, 8, 8)
    assert op_params_macs(back, *shape) == op_params_macs(op, *shape)


def test_every_key_kind_has_one_family():
    assert KINDS == KEY_KINDS
    assert {op_key_fields(op)[0] for op, *_ in CASES} == set(KEY_KINDS)


def test_zero_costs_nothing_and_has_no_key():
    for op in parse_ops("zero,none"):
        assert op_key_fields(op) is None
        assert op_params_macs(op, 8, 8, 1, 8, 8) == (0, 0)
        assert key_of(op, Shape(8, 8, 8), Shape(8, 8, 8)) is None
        assert build_op(op, 8, 16, 2)(torch.ones(2, 8, 7, 7)).shape == (2, 16, 4, 4)


def test_unknown_op_and_kind_are_errors():
    with pytest.raises(ProxylessError, match="no op family"):
        build_op("mb_k3_e6", 8, 8, 1)
    with pytest.raises(ProxylessError, match="unknown layer kind"):
        op_from_key("conv", 3, 1)


def test_timed_block_is_the_registry_module_behind_its_shortcut():
    plain = LayerKey("mbconv", (8, 8, 8), (4, 4, 16), 3, 6, 2, False)
    shortcut = LayerKey("mbconv", (8, 8, 8), (8, 8, 8), 5, 3, 1, True)
    assert isinstance(build_block(plain), MBConv)
    block = build_block(shortcut)
    assert isinstance(block, Residual) and block.shortcut and isinstance(block.body, MBConv)
    for key in (plain, shortcut):
        op = key_op(key)
        ih, iw, ic = key.input
        assert key_params_macs(key) == op_params_macs(op, ic, key.output[2], key.stride, ih, iw)
