"""One ``key=value`` parser for every command: the same text gives the same value everywhere."""

from __future__ import annotations

import pytest

from proxylessnas.errors import ProxylessError
from proxylessnas.overrides import convert, parse_overrides
from proxylessnas.search.config import SearchConfig
from proxylessnas.train.recipe import TrainRecipe

# (text, search field, recipe field, value): fields of the same type in both
SAME = [
    ("5", "search.epochs", "epochs", 5),
    ("5.0", "search.epochs", "epochs", 5),
    ("0.1", "weights.lr", "lr", 0.1),
    ("1e-3", "weights.lr", "lr", 0.001),
    ("2", "weights.lr", "lr", 2.0),
    ("'0.25'", "weights.lr", "lr", 0.25),  # a quoted number is text, converted by the field's type
    ('"7"', "search.epochs", "epochs", 7),
    ("true", "weights.nesterov", "nesterov", True),
    ("false", "weights.nesterov", "nesterov", False),
    ("yes", "weights.nesterov", "nesterov", True),
    ("off", "weights.nesterov", "nesterov", False),
    ("1", "weights.nesterov", "nesterov", True),
    ("0", "weights.nesterov", "nesterov", False),
    ("none", "latency.target", "dropout", None),
    ("null", "latency.target", "dropout", None),
    ("", "latency.target", "dropout", None),
    ("0.2", "latency.target", "dropout", 0.2),
]


def search_value(key: str, text: str):
    section, _, name = key.partition(".")
    return getattr(getattr(SearchConfig().with_overrides([f"{key}={text}"]), section), name)


def recipe_value(key: str, text: str):
    return getattr(TrainRecipe().with_overrides([f"{key}={text}"]), key)


@pytest.mark.parametrize("text, search_key, recipe_key, value", SAME)
def test_the_same_text_gives_the_same_value_in_search_and_train(text, search_key, recipe_key, value):
    found = search_value(search_key, text), recipe_value(recipe_key, text)
    assert found == (value, value)
    assert type(found[0]) is type(found[1]) is type(value)


@pytest.mark.parametrize("text", ["[1, 2]", "many", "5.5", "{a: 1}", "null", "true"])
def test_a_value_an_integer_field_refuses_is_refused_by_both(text):
    with pytest.raises(ProxylessError, match="bad value .* for search.epochs"):
        SearchConfig().with_overrides([f"search.epochs={text}"])
    with pytest.raises(ProxylessError, match="bad value .* for recipe key 'epochs'"):
        TrainRecipe().with_overrides([f"epochs={text}"])


@pytest.mark.parametrize("text", ["2", "maybe", "[true]"])
def test_a_value_a_flag_refuses_is_refused_by_both(text):
    with pytest.raises(ProxylessError, match="bad value .* for weights.nesterov"):
        SearchConfig().with_overrides([f"weights.nesterov={text}"])
    with pytest.raises(ProxylessError, match="bad value .* for recipe key 'nesterov'"):
        TrainRecipe().with_overrides([f"nesterov={text}"])


def test_values_are_yaml_scalars_for_every_command():
    parsed = parse_overrides(["a=5", "b=0.1", "c=true", "d=[1, 2]", "e=null", "f=none", "g='5'", "h=",
                              "i=text", "j=[unclosed"])
    assert parsed == {"a": 5, "b": 0.1, "c": True, "d": [1, 2], "e": None, "f": "none", "g": "5",
                      "h": None, "i": "text", "j": "[unclosed"}
    # values no field type converts reach the space preset as parsed: search and latency commands alike
    assert SearchConfig().with_overrides(["space.depths=[1, 2]"]).space.options == {"depths": [1, 2]}


def test_an_item_without_a_key_or_equals_sign_names_an_example():
    with pytest.raises(ProxylessError, match="override 'lr' is not key=value.*lr=0.1"):
        TrainRecipe().with_overrides(["lr"])
    with pytest.raises(ProxylessError, match="override '=5' is not key=value"):
        SearchConfig().with_overrides(["=5"])


def test_convert_follows_the_type_hint():
    assert convert(3, float) == 3.0 and type(convert(3, float)) is float
    assert convert(" NULL ", int | None) is None
    assert convert({"a": 1.0}, dict[str, float]) == {"a": 1.0}
    assert convert(12, str) == "12"
    assert convert(10**30, int) == 10**30  # kept exact, not through a float
    for value, kind in [(True, int), (True, float), (None, str), ([1], str), (3, dict), (10**400, float),
                        ("inf", int), (2, bool)]:
        with pytest.raises(ValueError):
            convert(value, kind)
