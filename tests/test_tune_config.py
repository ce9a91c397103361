"""The YAML ``tune:`` section: every bad input is one ConfigError naming the key (no Ray)."""

from __future__ import annotations

import math

import attrs
import numpy as np
import pytest
from _queue_helpers import load, make_config

from lfads_runs import ConfigError
from lfads_runs.tuning import TuneSpec

GOOD = """tune:
  population: 3
  epochs_per_generation: 2
  generations: 4
  metric: smoothed_valid_cost_heldin
  search:
    c_learning_rate_init: {min: 1.0e-4, max: 1.0e-2, init: [1.0e-3, 5.0e-3], scale: log}
    c_keep_prob: {min: 0.5, max: 1.0}
    cd_rate: {min: 0.01, max: 0.7, init: 0.3}
"""


def _load(tmp_path, text):
    return load(make_config(tmp_path, n_params=1, run_specs=("all",), extra=text))


def test_good_section_parses(tmp_path):
    spec = _load(tmp_path, GOOD).options["tune"]
    assert isinstance(spec, TuneSpec)
    assert (spec.population, spec.epochs_per_generation, spec.generations) == (3, 2, 4)
    assert spec.metric == "smth_valid_nll_heldin" and spec.mode == "min"
    assert spec.metric_window == 2  # min(5, epochs_per_generation)
    assert spec.burn_in_generations == 0  # exploit from the end of generation 0
    burn = _load(
        tmp_path, GOOD.replace("generations: 4", "generations: 4\n  burn_in_generations: 2")
    )
    assert burn.options["tune"].burn_in_generations == 2
    by = {r.name: r for r in spec.search}
    assert by["c_learning_rate_init"].hp_name == "learning_rate_init"
    assert by["cd_rate"].init == (0.3, 0.3)
    inits = spec.initial_configs()
    assert len(inits) == 3 and inits == spec.initial_configs()  # seeded
    for c in inits:
        assert 1e-3 <= c["c_learning_rate_init"] <= 5e-3 and c["cd_rate"] == 0.3
        assert 0.5 <= c["c_keep_prob"] <= 1.0


def test_explore_multiplies_within_width_and_clips(tmp_path):
    spec = _load(tmp_path, GOOD).options["tune"]
    explore = spec.explorer()
    cfg = {"member": 1, "c_learning_rate_init": 1e-3, "c_keep_prob": 0.99, "cd_rate": 0.3}
    seen = []
    for _ in range(200):
        new = explore(cfg)
        assert new["member"] == 1
        assert 0.8e-3 - 1e-15 <= new["c_learning_rate_init"] <= 1.2e-3 + 1e-15
        assert new["c_keep_prob"] <= 1.0  # clipped to max
        seen.append(new["cd_rate"] / 0.3)
    assert min(seen) < 0.85 and max(seen) > 1.15  # the factor really spans [0.8, 1.2]
    assert np.isclose(spec.search[0].perturb(1e-2, 1.2), 1e-2)  # clipped at max


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  population: 1\n  search: {c_keep_prob: {min: 0.5, max: 1.0}}\n", "tune.population"),
        ("  search: {c_bogus: {min: 0, max: 1}}\n", "unknown RunParams property 'c_bogus'"),
        ("  search: {c_factors_dim: {min: 2, max: 8}}\n", "cannot be searched"),
        ("  search: {c_keep_prob: {min: 0.9, max: 0.5}}\n", "min (0.9) must be smaller"),
        ("  search: {c_keep_prob: {min: 0.5, max: 0.5}}\n", "must be smaller than max"),
        ("  search: {c_keep_prob: {min: 0.5, max: 1.0, init: 0.2}}\n", "outside [min, max]"),
        ("  search: {c_keep_prob: {min: 0.5, max: 1.0, init: [0.6, 1.5]}}\n", "outside"),
        ("  search: {c_keep_prob: {min: 0.5, max: 1.0, init: [0.9, 0.6]}}\n", "larger than hi"),
        ("  search: {c_keep_prob: {min: 0.5, max: .nan}}\n", "finite number"),
        ("  search: {c_keep_prob: {min: 0.5, max: .inf}}\n", "finite number"),
        ("  search: {c_keep_prob: {min: 0, max: 1, scale: log}}\n", "log scale needs min > 0"),
        ("  search: {c_keep_prob: {min: 0.5, max: 1, scale: cubic}}\n", "'linear' or 'log'"),
        ("  search: {c_keep_prob: {min: 0.5, max: 1, step: 2}}\n", "unknown key 'step'"),
        ("  search: {c_keep_prob: {max: 1}}\n", "missing key 'min'"),
        ("  search: {}\n", "non-empty mapping"),
        ("  search: {cd_rate: {min: 0.5, max: 1.0}}\n", "invalid value"),
        ("  populaton: 3\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "unknown key"),
        ("  metric: accuracy\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "unknown metric"),
        ("  explore_width: 1.5\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "(0, 1)"),
        ("  run_specs: [nope]\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "unknown run spec"),
        ("  params: [7]\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "out of range 1..1"),
        ("  address: ''\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "tune.address"),
        (
            "  epochs_per_generation: 4\n  metric_window: 5\n"
            "  search: {c_keep_prob: {min: 0.5, max: 1}}\n",
            "metric_window (line 14): must be at most epochs_per_generation (4), got 5",
        ),
        ("  metric_window: 0\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "must be >= 1"),
        (
            "  burn_in_generations: -1\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n",
            "tune.burn_in_generations (line 13): must be >= 0, got -1",
        ),
        (
            "  generations: 4\n  burn_in_generations: 3\n"
            "  search: {c_keep_prob: {min: 0.5, max: 1}}\n",
            "must be less than generations - 1 (3), got 3: with it nothing would ever be exploited",
        ),
        ("  burn_in_generations: 1.5\n  search: {c_keep_prob: {min: 0.5, max: 1}}\n", "integer"),
        (
            "  search:\n    cd_rate: {min: 0.1, max: 0.5}\n    c_cd_rate: {min: 0.1, max: 0.5}\n",
            "searched twice",
        ),
    ],
)
def test_bad_section_is_one_config_error(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "tune:\n" + text)
    msg = str(info.value)
    assert "config.yaml" in msg and "tune" in msg and "line" in msg
    assert expected in msg
    assert not (tmp_path / "runs").exists()  # nothing was started or written


def test_log_draws_stay_in_init_range():
    from lfads_runs.tuning.spec import SearchRange

    r = SearchRange("c_learning_rate_init", "learning_rate_init", 1e-5, 1e-1, (1e-4, 1e-2), "log")
    rng = np.random.default_rng(0)
    draws = [r.draw(rng) for _ in range(500)]
    assert min(draws) >= 1e-4 and max(draws) <= 1e-2
    # log-uniform: about half the draws below the geometric middle
    below = sum(d < math.sqrt(1e-4 * 1e-2) for d in draws) / len(draws)
    assert 0.4 < below < 0.6


def test_ranked_value_averages_the_last_epochs(tmp_path):
    spec = _load(tmp_path, GOOD.replace("generations: 4", "generations: 4\n  metric_window: 2"))
    spec = spec.options["tune"]
    m = "smth_valid_nll_heldin"
    hist = [{m: 9.0}, {m: 1.0}, {m: 2.0, "other": 5.0}]
    assert spec.ranked_value(hist) == 1.5
    assert spec.ranked_value(hist[:1]) == 9.0  # fewer epochs than the window
    assert spec.ranked_value([]) is None
    assert spec.ranked_value([{m: 1.0}, {"other": 1.0}]) is None  # the metric is missing
    assert math.isnan(spec.ranked_value([{m: 1.0}, {m: float("nan")}]))
    assert spec.ranked_value([{m: 1.0}, {m: float("inf")}]) == math.inf


def test_explore_is_seeded_by_the_search_seed_and_generation(tmp_path):
    spec = _load(tmp_path, GOOD).options["tune"]
    cfg = {"member": 1, "c_learning_rate_init": 1e-3, "c_keep_prob": 0.7, "cd_rate": 0.3}

    def draws(explore):
        return [explore(cfg) for _ in range(5)]

    assert draws(spec.explorer(3)) == draws(spec.explorer(3))  # the same search explores alike
    assert draws(spec.explorer(3)) != draws(spec.explorer(4))  # a resume continues afresh
    other = attrs.evolve(spec, seed=spec.seed + 1)
    assert draws(other.explorer(3)) != draws(spec.explorer(3))
