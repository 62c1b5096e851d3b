import pytest

from proxylessnas.errors import ProxylessError
from proxylessnas.space import SearchSpace, get_space, infer_shapes, shapes_by_label


def test_paper_space_counts():
    space = get_space("proxyless-imagenet")
    assert len(space.searched_layers) == 21
    assert space.num_candidate_slots == 141
    assert sum(len(layer.candidates) == 7 for layer in space.searched_layers) == 15
    assert sum(len(layer.candidates) == 6 for layer in space.searched_layers) == 6


def test_zero_only_where_stride_one_and_same_width():
    for name in ("proxyless-imagenet", "proxyless-cifar", "tiny"):
        for layer in get_space(name).layers:
            has_zero = any(op.is_zero for op in layer.candidates)
            assert has_zero == (layer.searchable and layer.stride == 1 and layer.in_chs == layer.out_chs)


@pytest.mark.parametrize("resolution, sides", [
    (224, [112, 112, 56, 28, 14, 14, 7, 7]),
    (160, [80, 80, 40, 20, 10, 10, 5, 5]),
])
def test_paper_shapes(resolution, sides):
    shapes = shapes_by_label(get_space("proxyless-imagenet", resolution=resolution))
    labels = ["stem", "s0.b0", "s1.b3", "s2.b3", "s3.b3", "s4.b3", "s5.b3", "s6.b0"]
    assert [shapes[label].output.height for label in labels] == sides
    assert str(shapes["s6.b0"].output) == f"{sides[-1]}x{sides[-1]}x320"
    assert str(shapes["stem"].input) == f"{resolution}x{resolution}x3"


def test_cifar_ends_at_4x4():
    shapes = infer_shapes(get_space("proxyless-cifar"))
    assert shapes[0].output.height == 32
    assert [s for s in shapes if s.kind == "block"][-1].output.height == 4
    assert (shapes[-2].output.height, shapes[-2].output.channels) == (4, 1280)  # 1x1 head


def test_overrides_and_errors():
    space = get_space("proxyless-imagenet", width_mult=1.4, num_classes=10, candidates="mb_k{3,5}_e6")
    assert space.head.num_classes == 10 and space.stem.out_chs == 48 and space.head.out_chs == 1792
    assert len(space.layers[1].candidates) == 2
    assert space.overrides["width_mult"] == 1.4
    with pytest.raises(ProxylessError, match="unknown override"):
        get_space("proxyless-imagenet", widht_mult=1.0)
    with pytest.raises(ProxylessError, match="unknown search space"):
        get_space("nope")


def test_space_dict_round_trip():
    space = get_space("proxyless-cifar", width_mult=0.5)
    assert SearchSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ProxylessError, match="schema_version"):
        SearchSpace.from_dict({**space.to_dict(), "schema_version": 9})
