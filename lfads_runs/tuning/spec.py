"""The ``tune:`` section of a collection's YAML: a PBT search, validated up front.

Every mistake is one :class:`~lfads_runs.ConfigError` raised while the YAML
loads, so a bad search never starts Ray. Facts: shared/spec/autolfads.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from ..exceptions import ConfigError
from ..params import RunParams, param_fields

__all__ = [
    "METRICS",
    "SEARCHABLE",
    "SearchRange",
    "TuneSpec",
    "parse_tune_section",
    "ranked_value",
    "TUNE_KEYS",
]

#: engine hyperparameters a PBT member may change between generations: none of
#: them changes a weight's shape, so a checkpoint stays loadable after explore.
SEARCHABLE = frozenset(
    {
        "learning_rate_init",
        "keep_prob",
        "l2_gen_scale",
        "l2_con_scale",
        "kl_ic_weight",
        "kl_co_weight",
        "co_mean_corr_scale",
        "cd_rate",
        "cd_pass_rate",
        "max_grad_norm",
    }
)

#: rankable per-epoch metrics (engine/valid_metrics.py) -> "min" or "max"
METRICS: dict[str, str] = {
    "smth_valid_nll_heldin": "min",
    "valid_nll_heldin": "min",
    "selection_cost": "min",
    "valid_nll_sv": "min",
    "valid_nll_heldout": "min",
    "valid_nll_fp": "min",
    "valid_bps_heldin": "max",
    "valid_cobps": "max",
    "valid_fpbps": "max",
}
#: friendlier names accepted in YAML
METRIC_ALIASES = {
    "smoothed_valid_cost_heldin": "smth_valid_nll_heldin",
    "valid_cost_heldin": "valid_nll_heldin",
    "co_bps": "valid_cobps",
    "cobps": "valid_cobps",
    "fp_bps": "valid_fpbps",
    "bps_heldin": "valid_bps_heldin",
}

TUNE_KEYS = {
    "population": "members of each search (>= 2)",
    "epochs_per_generation": "epochs each member trains between two exploit/explore steps (default 25)",
    "generations": "generations of each search (default 20)",
    "metric": "ranking metric (default smth_valid_nll_heldin): " + ", ".join(METRICS),
    "metric_window": "last epochs of a generation whose metric is averaged for the ranking "
    "(default min(5, epochs_per_generation))",
    "search": "{param: {min, max, init, scale}}: the searched hyperparameters",
    "explore_width": "explore multiplies by a factor in [1-w, 1+w] (default 0.2)",
    "quantile": "fraction of members that exploit (bottom) and are copied (top); default 0.25",
    "burn_in_generations": "generations that end without exploit before the first one "
    "(default 0: the first exploit follows generation 0)",
    "run_specs": "run spec names to tune (default: all)",
    "params": "1-based parameter set indices to tune (default: all)",
    "address": "Ray cluster ('auto' or 'ray://host:10001'); default: a local Ray instance",
    "cpus_per_member": "CPUs of each member (default 1)",
    "gpus_per_member": "GPUs of each member, fractions allowed (default: share the local GPUs)",
    "seed": "seed of the initial draws and the members' engines (default 0)",
}
_RANGE_KEYS = {
    "min": "smallest value",
    "max": "largest value",
    "init": "initial values: a number, or [lo, hi] drawn from (default [min, max])",
    "scale": "linear (default) or log",
}


@attrs.frozen
class SearchRange:
    """One searched hyperparameter: its bounds, initial range and scale."""

    name: str  #: RunParams name (as in ``params``)
    hp_name: str  #: engine Hyperparameters name
    min: float
    max: float
    init: tuple[float, float]
    scale: str = "linear"

    def draw(self, rng: np.random.Generator) -> float:
        lo, hi = self.init
        if lo == hi:
            return lo
        if self.scale == "log":
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return float(rng.uniform(lo, hi))

    def perturb(self, value: float, factor: float) -> float:
        """Explore: ``value * factor``, clipped to [min, max]."""
        return float(min(self.max, max(self.min, value * factor)))


@attrs.frozen
class TuneSpec:
    """A PBT search for each selected (run spec x params)."""

    search: tuple[SearchRange, ...]
    population: int = 8
    epochs_per_generation: int = 25
    generations: int = 20
    metric: str = "smth_valid_nll_heldin"
    metric_window: int = 5
    explore_width: float = 0.2
    quantile: float = 0.25
    burn_in_generations: int = 0
    run_specs: tuple[str, ...] | None = None
    params: tuple[int, ...] | None = None
    address: str | None = None
    cpus_per_member: float = 1.0
    gpus_per_member: float | None = None
    seed: int = 0

    @property
    def mode(self) -> str:
        return METRICS[self.metric]

    def ranked_value(self, history: Sequence[Mapping[str, float]]) -> float | None:
        """See :func:`ranked_value`."""
        return ranked_value(history, self.metric, self.metric_window)

    def initial_configs(self) -> list[dict[str, float]]:
        """Each member's first hyperparameters (seeded, so a restart draws the same)."""
        rng = np.random.default_rng(self.seed)
        return [{r.name: r.draw(rng) for r in self.search} for _ in range(self.population)]

    def explorer(self, start: int = 0) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The explore step: each searched value times a factor in [1-w, 1+w], clipped.

        Its factors come from a stream of ``seed`` and ``start`` (the search's
        completed generations), so a search, and a resumed one, explores the same way
        every time it is run with the same seed.
        """
        ranges = {r.name: r for r in self.search}
        w = self.explore_width
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(start)]))

        def explore(config: dict[str, Any]) -> dict[str, Any]:
            out = dict(config)
            for name, r in ranges.items():
                out[name] = r.perturb(float(config[name]), float(rng.uniform(1 - w, 1 + w)))
            return out

        return explore

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)


def ranked_value(history: Sequence[Mapping[str, float]], metric: str, window: int) -> float | None:
    """The value a member is ranked by: the mean of ``metric`` over the last
    ``window`` epochs of ``history`` (per-epoch metrics, oldest first).

    One validation pass of few trials is noisy; an average over a few epochs
    ranks members by their level rather than by one epoch's luck. None when the
    metric is missing; NaN or inf when a value of the window is.
    """
    values = [h.get(metric) for h in history[-window:]]
    if not values or any(v is None for v in values):
        return None
    return float(sum(values) / len(values))


def _number(value: Any, where: str, err: Callable[[str, str], ConfigError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise err(where, f"expected a finite number, got {value!r}")
    return float(value)


def parse_tune_section(
    value: Any,
    params_cls: type[RunParams],
    error: Callable[[tuple, str], ConfigError],
) -> TuneSpec:
    """Check a ``tune:`` mapping; ``error(path, message)`` builds the ConfigError
    (the config loader's, which adds the file and line)."""
    base = ("tune",)

    def err(where: str, msg: str) -> ConfigError:
        return error(base + tuple(p for p in where.split(".") if p), msg)

    if not isinstance(value, Mapping):
        raise error(base, f"expected a mapping, got {type(value).__name__}")
    for key in value:
        if key not in TUNE_KEYS:
            raise err(str(key), f"unknown key {key!r}; valid keys: {', '.join(sorted(TUNE_KEYS))}")

    def integer(key: str, default: int, minimum: int) -> int:
        v = value.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise err(key, f"expected an integer, got {v!r}")
        if v < minimum:
            raise err(key, f"must be >= {minimum}, got {v}")
        return v

    population = integer("population", 8, 2)
    epg = integer("epochs_per_generation", 25, 1)
    generations = integer("generations", 20, 1)
    seed = integer("seed", 0, 0)
    metric = value.get("metric", "smth_valid_nll_heldin")
    if not isinstance(metric, str) or METRIC_ALIASES.get(metric, metric) not in METRICS:
        raise err(
            "metric",
            f"unknown metric {metric!r}; choose one of {', '.join([*METRICS, *METRIC_ALIASES])}",
        )
    metric = METRIC_ALIASES.get(metric, metric)
    window = integer("metric_window", min(5, epg), 1)
    if window > epg:
        raise err(
            "metric_window",
            f"must be at most epochs_per_generation ({epg}), got {window}",
        )
    width = _number(value.get("explore_width", 0.2), "explore_width", err)
    if not 0 < width < 1:
        raise err("explore_width", f"must be in (0, 1), got {width}")
    quantile = _number(value.get("quantile", 0.25), "quantile", err)
    if not 0 < quantile <= 0.5:
        raise err("quantile", f"must be in (0, 0.5], got {quantile}")
    burn_in = integer("burn_in_generations", 0, 0)
    if burn_in and burn_in >= generations - 1:
        raise err(
            "burn_in_generations",
            f"must be less than generations - 1 ({generations - 1}), got {burn_in}: "
            "with it nothing would ever be exploited",
        )
    cpus = _number(value.get("cpus_per_member", 1), "cpus_per_member", err)
    if cpus <= 0:
        raise err("cpus_per_member", f"must be > 0, got {cpus}")
    gpus = value.get("gpus_per_member")
    if gpus is not None:
        gpus = _number(gpus, "gpus_per_member", err)
        if gpus < 0:
            raise err("gpus_per_member", f"must be >= 0, got {gpus}")
    address = value.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise err("address", f"expected 'auto' or 'ray://host:port', got {address!r}")
    run_specs = value.get("run_specs")
    if run_specs is not None:
        if not isinstance(run_specs, list) or not all(isinstance(s, str) for s in run_specs):
            raise err("run_specs", "expected a list of run spec names")
        run_specs = tuple(run_specs)
    params = value.get("params")
    if params is not None:
        if not isinstance(params, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in params
        ):
            raise err("params", "expected a list of 1-based parameter set indices")
        params = tuple(params)
    search = value.get("search")
    if not isinstance(search, Mapping) or not search:
        raise err("search", "expected a non-empty mapping {hyperparameter: {min, max, ...}}")
    ranges = tuple(_search_range(str(k), v, params_cls, err) for k, v in search.items())
    names = [r.hp_name for r in ranges]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise err("search", f"hyperparameter {sorted(dup)[0]!r} is searched twice")
    return TuneSpec(
        search=ranges,
        population=population,
        epochs_per_generation=epg,
        generations=generations,
        metric=metric,
        metric_window=window,
        explore_width=width,
        quantile=quantile,
        burn_in_generations=burn_in,
        run_specs=run_specs,
        params=params,
        address=address,
        cpus_per_member=cpus,
        gpus_per_member=gpus,
        seed=seed,
    )


def _search_range(
    key: str, spec: Any, params_cls: type[RunParams], err: Callable[[str, str], ConfigError]
) -> SearchRange:
    where = f"search.{key}"
    try:
        name = params_cls.resolve_name(key)
    except ConfigError as exc:
        raise err(where, str(exc)) from None
    field = next(f for f in param_fields(params_cls) if f.name == name)
    hp = field.flag_name if field.is_flag else None
    if hp not in SEARCHABLE:
        raise err(
            where,
            f"{key!r} cannot be searched (it changes the model or the data); searchable: "
            + ", ".join(
                sorted(
                    f.name
                    for f in param_fields(params_cls)
                    if f.is_flag and f.flag_name in SEARCHABLE
                )
            ),
        )
    if not isinstance(spec, Mapping):
        raise err(where, "expected a mapping {min, max, init, scale}")
    for k in spec:
        if k not in _RANGE_KEYS:
            raise err(f"{where}.{k}", f"unknown key {k!r}; valid keys: {', '.join(_RANGE_KEYS)}")
    for k in ("min", "max"):
        if k not in spec:
            raise err(where, f"missing key {k!r}")
    lo = _number(spec["min"], f"{where}.min", err)
    hi = _number(spec["max"], f"{where}.max", err)
    if lo >= hi:
        raise err(where, f"min ({lo:g}) must be smaller than max ({hi:g})")
    scale = spec.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise err(f"{where}.scale", f"expected 'linear' or 'log', got {scale!r}")
    if scale == "log" and lo <= 0:
        raise err(f"{where}.min", f"a log scale needs min > 0, got {lo:g}")
    init = spec.get("init", [lo, hi])
    if isinstance(init, list):
        if len(init) != 2:
            raise err(f"{where}.init", f"expected [lo, hi], got {init!r}")
        init_lo = _number(init[0], f"{where}.init", err)
        init_hi = _number(init[1], f"{where}.init", err)
        if init_lo > init_hi:
            raise err(f"{where}.init", f"lo ({init_lo:g}) is larger than hi ({init_hi:g})")
    else:
        init_lo = init_hi = _number(init, f"{where}.init", err)
    if init_lo < lo or init_hi > hi:
        raise err(f"{where}.init", f"init {init!r} lies outside [min, max] = [{lo:g}, {hi:g}]")
    # Both ends must be valid parameter values (e.g. cd_rate < 1, keep_prob <= 1).
    for v in (lo, hi):
        try:
            params_cls().with_changes(**{name: v})
        except ConfigError as exc:
            raise err(where, f"the range [{lo:g}, {hi:g}] allows an invalid value: {exc}") from None
    return SearchRange(name=name, hp_name=hp, min=lo, max=hi, init=(init_lo, init_hi), scale=scale)
