import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxylessnas.errors import ProxylessError
from proxylessnas.space.ops import ZERO, MBConvOp, expand_braces, format_op, parse_op, parse_ops


@given(st.integers(0, 10), st.integers(1, 12))
def test_format_parse_round_trip(half_kernel, expand):
    token = f"mb_k{2 * half_kernel + 1}_e{expand}"
    assert format_op(parse_op(token)) == token


def test_zero_round_trip():
    assert parse_op("zero") is ZERO and format_op(ZERO) == "zero"


def test_brace_expansion_order():
    assert expand_braces("mb_k{3,5}_e{3,6},zero") == [
        "mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6", "zero"]
    assert parse_ops("mb_k{3,5,7}_e{3,6}") == tuple(
        MBConvOp(k, e) for k in (3, 5, 7) for e in (3, 6))


@pytest.mark.parametrize("text, token", [
    ("mb_k4_e6", "4"), ("mb_k5_e0", "0"), ("conv3x3", "conv3x3"), ("mb_k5_e6x", "mb_k5_e6x"),
])
def test_errors_name_the_bad_token(text, token):
    with pytest.raises(ProxylessError) as err:
        parse_op(text)
    assert token in str(err.value)


@pytest.mark.parametrize("pattern", ["mb_k{3,5_e3", "mb_k3}_e3", "mb_k3_e3,,zero", "mb_k3_e3,mb_k3_e3"])
def test_bad_patterns(pattern):
    with pytest.raises(ProxylessError):
        parse_ops(pattern)
