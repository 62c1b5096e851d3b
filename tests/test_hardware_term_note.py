"""The search says in plain words where REINFORCE prices hardware unlike the latency settings."""

from __future__ import annotations

import pytest

from proxylessnas.search.config import SearchConfig, load_config

ACCURACY_ONLY = ["latency.mode=penalty", "latency.loss=add_linear", "latency.loss_params={weight: 0}"]


def test_reinforce_with_a_zero_latency_weight_but_a_reward_exponent_is_named():
    config = SearchConfig().with_overrides([*ACCURACY_ONLY, "search.strategy=reinforce",
                                            "reinforce.reward_exponent=0.1"])
    note = config.hardware_term_note()
    assert note is not None and "reinforce.reward_exponent=0" in note


def test_reinforce_with_a_latency_weight_but_no_reward_exponent_is_named():
    config = SearchConfig().with_overrides(["latency.mode=penalty", "latency.loss=add_linear",
                                            "latency.loss_params={weight: 0.5}", "search.strategy=reinforce",
                                            "reinforce.reward_exponent=0"])
    assert "reinforce.reward_exponent > 0" in config.hardware_term_note()


@pytest.mark.parametrize("overrides", [
    [*ACCURACY_ONLY, "search.strategy=gradient", "reinforce.reward_exponent=0.1"],  # reinforce is inert
    [*ACCURACY_ONLY, "search.strategy=reinforce", "reinforce.reward_exponent=0"],  # both accuracy only
    ["latency.mode=band", "search.strategy=reinforce"],
])
def test_consistent_settings_get_no_note(overrides):
    assert SearchConfig().with_overrides(overrides).hardware_term_note() is None


@pytest.mark.parametrize("recipe", ["nasbench201", "pyramid-tree-cpu"])
def test_the_accuracy_only_recipes_are_consistent_under_reinforce(recipe):
    config = load_config(recipe).with_overrides(["search.strategy=reinforce"])
    assert config.hardware_term_note() is None
