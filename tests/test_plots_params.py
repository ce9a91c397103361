"""Figures of trained weights: generator matrix and read-outs, written headless as PNG."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lfads_runs.dump import spec_from_output_dir
from lfads_runs.plots.params import (
    plot_generator_matrix,
    plot_readout_matrices,
    save_param_figures,
)
from lfads_runs.trained_params import ModelTrainedParameters

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def _params(tf_fixtures, case, names):
    out = tf_fixtures / case / "lfadsOutput"
    return ModelTrainedParameters.from_file(out / "model_params", names, spec_from_output_dir(out))


@pytest.mark.parametrize(
    ("case", "names"),
    [("stitch2", ["dataset001", "dataset002"]), ("gauss1", ["dataset001"])],
)
def test_save_param_figures_writes_pngs(tf_fixtures, tmp_path, case, names):
    """Both figures are written as non-empty PNG files, nothing else."""
    files = save_param_figures(_params(tf_fixtures, case, names), tmp_path / "figs")
    assert [f.name for f in files] == ["generator_W.png", "readout_matrices.png"]
    for f in files:
        data = f.read_bytes()
        assert data.startswith(PNG) and len(data) > 2000
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(f.name for f in files)


def test_generator_heat_map_content(tf_fixtures):
    """The heat map shows gen_gengru_rh_to_c_W with a colour scale centred at zero."""
    import matplotlib.figure

    p = _params(tf_fixtures, "ctrl1", ["dataset001"])
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    assert plot_generator_matrix(p, ax) is fig
    (im,) = ax.get_images()
    np.testing.assert_array_equal(im.get_array(), p.gen_gengru_rh_to_c_W)
    lo, hi = im.get_clim()
    assert lo == -hi and hi == pytest.approx(np.abs(p.gen_gengru_rh_to_c_W).max())
    assert len(fig.axes) == 2  # the heat map and its colour bar


def test_readout_panels(tf_fixtures):
    """One panel per dataset in the run's order, Poisson log-rate or Gaussian mean read-outs."""
    import matplotlib.figure

    p = _params(tf_fixtures, "stitch2", ["dataset002", "dataset001"])
    fig = matplotlib.figure.Figure()
    axes = fig.subplots(1, 2)
    plot_readout_matrices(p, axes)
    shapes = [ax.get_images()[0].get_array().shape for ax in axes]
    assert shapes == [(6, 23), (6, 20)]
    assert axes[0].get_title() == "dataset002: factors_to_logrates_W"
    g = _params(tf_fixtures, "gauss1", ["dataset001"])
    fig = matplotlib.figure.Figure()
    ax = fig.add_subplot()
    plot_readout_matrices(g, [ax])
    assert "factors_to_means_W" in ax.get_title()
    with pytest.raises(ValueError, match="need 2 axes"):
        plot_readout_matrices(p, [ax])


def test_pyplot_path_and_missing_parts(tf_fixtures):
    """Without axes a new pyplot figure is made; a model without read-outs is a ValueError."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = _params(tf_fixtures, "ctrl1", ["dataset001"])
    fig = plot_readout_matrices(p)
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = plot_generator_matrix(p)
    plt.close(fig)
    import attrs

    with pytest.raises(ValueError, match="identity read-out"):
        plot_readout_matrices(attrs.evolve(p, factors_to_logrates_W=None))


def test_importing_plots_does_not_import_matplotlib():
    """lfads_runs.plots and lfads_runs.plots.params import without loading matplotlib."""
    code = (
        "import sys, lfads_runs.plots, lfads_runs.plots.params, lfads_runs.dump; "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
