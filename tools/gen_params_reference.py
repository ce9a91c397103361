#!/usr/bin/env python
"""Generate the reference tables of the documentation from the code, so they cannot drift.

Usage::

    python tools/gen_params_reference.py          # rewrite the generated regions in docs/
    python tools/gen_params_reference.py --check  # exit 1 when a committed page is stale

A page holds generated regions between two HTML comments::

    <!-- BEGIN GENERATED run-params -->
    ... (rewritten by this tool) ...
    <!-- END GENERATED run-params -->

Generators (the region names):

``run-params``
    Every RunParams property from :func:`lfads_runs.params.param_fields`: Python
    name, MATLAB name, class, default, meaning, whether it can enter the param
    hash and the data hash, and the run_lfads.py flag.
``config-keys``, ``section-keys``, ``dataset-keys``
    The YAML keys of :mod:`lfads_runs.config` (``CONFIG_KEYS``, ``SECTION_KEYS``,
    ``DATASET_KEYS``).
``trained-params-fields``
    The fields of :class:`lfads_runs.trained_params.ModelTrainedParameters`, their
    ``model_params`` keys and shapes, derived from :class:`lfads_runs.model_spec.ModelSpec`.
``posterior-fields``
    Units of the :class:`~lfads_runs.results.PosteriorMeans` fields (``FIELD_UNITS``).
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"

_REGION = re.compile(
    r"(<!-- BEGIN GENERATED (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- END GENERATED (?P=name) -->)",
    re.S,
)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    return f"`{text}`"


def _default(f) -> str:
    v = f.default
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return _code("true" if v else "false")
    if isinstance(v, str):
        return _code(v) if v else "`''`"
    if isinstance(v, tuple):
        return "`[]`" if not v else _code(list(v))
    if isinstance(v, float):
        return _code(f"{v:g}")
    return _code(v)


def gen_run_params() -> str:
    from lfads_runs.params import param_fields

    rows = [
        "| Python name | MATLAB name | Class | Default | Meaning | Param hash | Data hash | "
        "run_lfads.py flag |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in param_fields():
        notes = []
        if f.hidden:
            notes.append("hidden (MATLAB `Hidden`)")
        if f.extension:
            notes.append("lfads_runs extension")
        if f.scale:
            notes.append(
                f"× number of datasets when `scale{f.scale.title()}"
                f"{'Step' if f.scale == 'start' else 'Steps'}WithDatasets`"
            )
        if f.choices:
            notes.append("one of " + ", ".join(_code(c) for c in f.choices))
        meaning = _cell(f.doc) + ("; " + "; ".join(notes) if notes else "")
        p = "yes" if f.in_param_hash else "–"
        if f.in_data_hash(20171107) and f.in_data_hash(1):
            d = "yes"
        elif f.in_data_hash(20171107):
            d = "yes (RunParams `version` ≥ 20171107)"
        else:
            d = "–"
        if f.is_flag and not f.extension:
            flag = _code(f"--{f.flag_name}")
            if f.hidden:
                flag += " (only when not default)"
        elif f.extension:
            flag = _code(f"--{f.flag_name}") + " (lfads_runs engine only)"
        else:
            flag = "–"
        rows.append(
            f"| {_code(f.name)} | {_code(f.matlab_name)} | {f.matlab_class} | {_default(f)} | "
            f"{meaning} | {p} | {d} | {flag} |"
        )
    return "\n".join(rows) + "\n"


def _key_table(keys: dict[str, str], first: str = "Key") -> str:
    rows = [f"| {first} | Meaning |", "|---|---|"]
    rows += [f"| {_code(k)} | {_cell(v)} |" for k, v in keys.items()]
    return "\n".join(rows) + "\n"


def gen_config_keys() -> str:
    from lfads_runs.config import CONFIG_KEYS

    return _key_table(CONFIG_KEYS)


def gen_section_keys() -> str:
    from lfads_runs.config import SECTION_KEYS

    out = []
    for section, keys in SECTION_KEYS.items():
        out.append(f"**`{section}:`**\n\n" + _key_table(keys))
    return "\n".join(out)


def gen_dataset_keys() -> str:
    from lfads_runs.config import DATASET_KEYS

    return _key_table(DATASET_KEYS)


def gen_posterior_fields() -> str:
    from lfads_runs.results.posterior_means import FIELD_UNITS

    return _key_table(FIELD_UNITS, "Field").replace("| Meaning |", "| Unit |")


# Symbolic shapes: build a model whose dimensions are distinct powers of 8, then read
# every shape back as a sum of symbols (coefficients < 8 decode uniquely).
_BASE = 8
_SYMBOLS = ("1", "D", "F", "H_ic", "I", "G", "H_ci", "C", "U")
_LEGEND = {
    "D": "neurons of the dataset",
    "F": "`c_factors_dim`",
    "H_ic": "`c_ic_enc_dim`",
    "I": "`c_ic_dim`",
    "G": "`c_gen_dim`",
    "H_ci": "`c_ci_enc_dim`",
    "C": "`c_con_dim`",
    "U": "`c_co_dim`",
}


def _decode(n: int) -> str:
    if not 0 < n < _BASE ** len(_SYMBOLS):
        raise ValueError(f"cannot decode dimension {n}")
    terms = []
    for i in reversed(range(len(_SYMBOLS))):
        c, sym = (n // _BASE**i) % _BASE, _SYMBOLS[i]
        if c:
            terms.append(str(c) if sym == "1" else (sym if c == 1 else f"{c}·{sym}"))
    return " + ".join(terms)


def _symbolic_shapes(output_dist: str) -> dict[str, tuple[str, ...]]:
    from lfads_runs.hparams import Hyperparameters
    from lfads_runs.model_spec import DatasetSpec, ModelSpec

    dim = {s: _BASE**i for i, s in enumerate(_SYMBOLS)}
    hps = Hyperparameters(
        output_dist=output_dist,
        factors_dim=dim["F"],
        ic_enc_dim=dim["H_ic"],
        ic_dim=dim["I"],
        gen_dim=dim["G"],
        ci_enc_dim=dim["H_ci"],
        con_dim=dim["C"],
        co_dim=dim["U"],
    )
    # Two datasets of D neurons: per-dataset read-ins exist (stitching).
    spec = ModelSpec.build(
        hps, [DatasetSpec("dsA", dim["D"]), DatasetSpec("dsB", dim["D"])], num_steps=10
    )
    return {v.name: tuple(_decode(d) for d in v.shape) for v in spec.variables}


def gen_trained_params_fields() -> str:
    from lfads_runs.trained_params import FIELDS

    shapes = {**_symbolic_shapes("gaussian"), **_symbolic_shapes("poisson")}
    rows = [
        "| Group | Field | `model_params` key | Shape `[in, out]` |",
        "|---|---|---|---|",
    ]
    for f in FIELDS:
        name = f.checkpoint_name("dsA") if f.per_dataset else f.checkpoint_name()
        key = f.hdf5_key("<ds>") if f.per_dataset else f.hdf5_key()
        key = key.replace("<ds>.h5", "<ds>.h5")
        if f.name == "gen_g0":
            shape = "1, G"
        else:
            shape = ", ".join(shapes[name])
        field = _code(f.name) + (" (per dataset)" if f.per_dataset else "")
        rows.append(f"| {f.group} | {field} | {_code(key)} | [{shape}] |")
    legend = "; ".join(f"{k} = {v}" for k, v in _LEGEND.items())
    return "\n".join(rows) + f"\n\nSymbols: {legend}.\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "run-params": gen_run_params,
    "config-keys": gen_config_keys,
    "section-keys": gen_section_keys,
    "dataset-keys": gen_dataset_keys,
    "trained-params-fields": gen_trained_params_fields,
    "posterior-fields": gen_posterior_fields,
}


def render(text: str, where: str) -> str:
    """``text`` with every generated region rewritten."""

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in GENERATORS:
            raise SystemExit(f"{where}: unknown generated region {name!r}")
        return f"{m.group(1)}{GENERATORS[name]()}{m.group(4)}"

    return _REGION.sub(sub, text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="fail when a page is stale")
    ap.add_argument("--docs", type=Path, default=DOCS)
    args = ap.parse_args(argv)
    stale = []
    n_regions = 0
    for page in sorted(args.docs.rglob("*.md")):
        old = page.read_text(encoding="utf-8")
        n_regions += len(_REGION.findall(old))
        new = render(old, str(page))
        if new == old:
            continue
        if args.check:
            stale.append(page)
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), str(page), "generated", lineterm="", n=1
            )
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            page.write_text(new, encoding="utf-8")
            print(f"rewrote {page.relative_to(args.docs.parent)}")
    if stale:
        print(
            f"stale generated docs: {', '.join(str(p) for p in stale)}; "
            "run python tools/gen_params_reference.py",
            file=sys.stderr,
        )
        return 1
    if args.check:
        print(f"generated docs up to date ({n_regions} regions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
