import random

import pytest

from proxylessnas import Arch, get_space
from proxylessnas.errors import ProxylessError
from proxylessnas.hardware.flops import key_params_macs
from proxylessnas.hardware.keys import LayerKey, arch_keys, space_keys
from proxylessnas.nets import count_params_macs, net_config
from proxylessnas.space import infer_shapes


@pytest.mark.parametrize("name", ["tiny", "proxyless-cifar", "proxyless-imagenet"])
def test_canonical_string_round_trips(name):
    keys = space_keys(get_space(name)).unique()
    assert len({str(k) for k in keys}) == len(keys)
    for key in keys:
        assert LayerKey.parse(str(key)) == key


def test_keys_follow_shape_inference():
    space = get_space("proxyless-cifar")
    shapes = {s.label: s for s in infer_shapes(space)}
    keys = space_keys(space)
    for layer, layer_keys in zip(space.searched_layers, keys.searched):
        shape = shapes[layer.label]
        for op, key in zip(layer.candidates, layer_keys):
            if op.is_zero:
                assert key is None
                continue
            assert key.input == (shape.input.height, shape.input.width, shape.input.channels)
            assert key.output == (shape.output.height, shape.output.width, shape.output.channels)
            assert (key.kernel_size, key.expand_ratio, key.stride) == (op.kernel_size, op.expand_ratio,
                                                                        layer.stride)
            assert key.residual == layer.residual_allowed
    assert [k.kind for k in keys.fixed] == ["stem", "mbconv", "head", "classifier"]
    assert str(keys.fixed[-1]).startswith("classifier-input:4x4x1280-output:1x1x10")


def test_shared_shapes_share_keys():
    space = get_space("proxyless-cifar")
    keys = space_keys(space)
    # the three stride-1 blocks of stage 1 have identical shapes, hence identical keys
    assert keys.searched[1] == keys.searched[2] == keys.searched[3]
    assert len(keys.unique()) == 70


def test_arch_keys_drop_zero_and_keep_order():
    space = get_space("tiny")
    ops = [layer.candidates[-1] for layer in space.searched_layers]  # zero wherever legal
    keys = arch_keys(space, Arch.from_ops(space, ops))
    zero_layers = sum(op.is_zero for op in ops)
    assert zero_layers == 3
    assert len(keys) == 1 + len(space.layers) - zero_layers + 2
    assert keys[0].kind == "stem" and keys[-2].kind == "head" and keys[-1].kind == "classifier"


def test_key_macs_match_the_net_profile():
    rng = random.Random(0)
    for name in ("tiny", "proxyless-imagenet"):
        space = get_space(name)
        for _ in range(5):
            arch = Arch.from_ops(space, [rng.choice(l.candidates) for l in space.searched_layers])
            params, macs = count_params_macs(net_config(space, arch))
            keys = arch_keys(space, arch)
            assert sum(key_params_macs(k)[1] for k in keys) == macs
            assert sum(key_params_macs(k)[0] for k in keys) == params


@pytest.mark.parametrize("text", ["", "conv-input:1x1x1", "mbconv-input:8x8x8-output:8x8x8-kernel:3",
                                  "foo-input:1x1x1-output:1x1x1-kernel:1-expand:1-stride:1-residual:0"])
def test_bad_keys_raise(text):
    with pytest.raises(ProxylessError):
        LayerKey.parse(text)
