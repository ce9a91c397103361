"""Tests of rebinning, the train/valid split and value checks (lfads_runs.data.binning)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import manifest, n_trials

from lfads_runs.data.binning import (
    check_split_sizes,
    min_trials_for_batch_size,
    rebin_dataset,
    rebin_factor,
    rebin_sum,
    split_trials,
    validate_dataset,
)
from lfads_runs.data.dataset import DatasetData
from lfads_runs.exceptions import ConfigError, DataError, LfadsRunsWarning


def test_split_matches_matlab_rule():
    """Validation trials are 1, 6, 11, ... for ratio 4; training trials are the rest, ascending."""
    train, valid = split_trials(12, 4)
    assert valid.tolist() == [1, 6, 11]
    assert train.tolist() == [2, 3, 4, 5, 7, 8, 9, 10, 12]
    assert train.dtype == np.int64
    train, valid = split_trials(5, 1)
    assert valid.tolist() == [1, 3, 5] and train.tolist() == [2, 4]
    with pytest.raises(ConfigError, match="positive integer"):
        split_trials(10, 0)
    with pytest.raises(ConfigError, match="positive integer"):
        split_trials(10, 2.5)


def test_split_matches_fixture(tf_fixtures):
    """The split reproduces the reference input files' train_inds/valid_inds."""
    import h5py

    with h5py.File(tf_fixtures / "ctrl1" / "lfadsInput" / "lfads_dataset001.h5", "r") as f:
        data = manifest("ctrl1")["synthetic_data"]
        train, valid = split_trials(n_trials("ctrl1")["all"], data["train_to_test_ratio"])
        np.testing.assert_array_equal(train, f["train_inds"][()])
        np.testing.assert_array_equal(valid, f["valid_inds"][()])


def test_rebin_sums_and_drops_partial_bins():
    """Counts, truth and external inputs are summed; the trailing partial bin is dropped."""
    counts = np.arange(2 * 7 * 3).reshape(2, 7, 3)
    out = rebin_sum(counts, 3)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out[:, 0], counts[:, 0:3].sum(axis=1))
    np.testing.assert_array_equal(out[:, 1], counts[:, 3:6].sum(axis=1))
    d = DatasetData(
        counts,
        bin_ms=2,
        time_ms=np.arange(7) * 2 + 100.0,
        true_rates=counts * 0.5,
        external_inputs=np.ones((2, 7, 1)),
        condition_id=[1, 2],
    )
    with pytest.warns(LfadsRunsWarning, match=r"'ds'.*last 1 bin\(s\) \(2 ms\)"):
        r = rebin_dataset(d, 6, name="ds")
    assert r.bin_ms == 6 and r.counts.shape == (2, 2, 3) and r.counts.dtype == counts.dtype
    np.testing.assert_array_equal(r.time_ms, [100.0, 106.0])
    np.testing.assert_array_equal(r.true_rates, out * 0.5)
    np.testing.assert_array_equal(r.external_inputs, np.full((2, 2, 1), 3.0))
    assert r.condition_id.tolist() == [1, 2]
    assert rebin_dataset(d, 2) is d
    assert rebin_sum(np.ones((1, 4, 1), bool), 2).tolist() == [[[2], [2]]]


def test_rebin_errors():
    """A bin that does not divide spike_bin_ms, or trials shorter than one bin, are errors naming the dataset."""
    assert rebin_factor(0.5, 2) == 4
    assert rebin_factor(0.1, 0.3) == 3  # float tolerance
    with pytest.raises(DataError, match="'ds1'.*not an integer multiple.*2 ms"):
        rebin_factor(2, 3, name="ds1")
    with pytest.raises(DataError, match="not an integer multiple"):
        rebin_factor(2, 1, name="ds1")
    with pytest.raises(ConfigError, match="positive"):
        rebin_factor(1, 0)
    with pytest.raises(DataError, match="shorter than one"):
        rebin_dataset(DatasetData(np.zeros((2, 3, 1))), 5, name="ds")


def test_split_size_check_is_strict():
    """Each split needs strictly more than batch_size trials; the message says how many are needed."""
    assert min_trials_for_batch_size(16, 4) == 5 * 16 + 1
    check_split_sizes(81, 4, 16)
    with pytest.raises(
        DataError, match=r"'d2': 80 trials split into 64 training and 16 validation"
    ):
        check_split_sizes(80, 4, 16, name="d2")
    with pytest.raises(DataError, match="at least 81 trials; lower c_batch_size to at most 15"):
        check_split_sizes(80, 4, 16)
    for n in range(1, 120):
        train, valid = split_trials(n, 4)
        ok = train.size > 16 and valid.size > 16
        assert ok == (n >= min_trials_for_batch_size(16, 4))


@pytest.mark.parametrize(
    ("counts", "dist", "match"),
    [
        (
            np.array([[[1.0], [np.nan]]]),
            "poisson",
            r"NaN or infinite values \(1 values, first at trial 1, bin 2",
        ),
        (np.array([[[1.0], [np.inf]]]), "gaussian", "NaN or infinite"),
        (np.array([[[1], [-1]]]), "poisson", "must not be negative"),
        (np.array([[[1.0], [0.5]]]), "poisson", "whole numbers.*gaussian"),
    ],
)
def test_validate_bad_counts(counts, dist, match):
    """NaN, negative and non-integer counts are errors naming the dataset and the first bad value."""
    with pytest.raises(DataError, match=match) as info:
        validate_dataset(DatasetData(counts, source="file.npz"), name="ds7", output_dist=dist)
    assert "'ds7'" in str(info.value) and "file.npz" in str(info.value)


def test_validate_accepts_good_data_and_checks_truth():
    """Gaussian data may be negative and fractional; NaN truth or inputs are errors."""
    validate_dataset(DatasetData(np.array([[[-1.5], [0.2]]])), name="g", output_dist="gaussian")
    validate_dataset(DatasetData(np.array([[[1.0], [2.0]]])), name="p", output_dist="poisson")
    bad_truth = DatasetData(np.ones((1, 2, 1)), true_rates=np.array([[[np.nan], [1.0]]]))
    with pytest.raises(DataError, match="true_rates contain NaN"):
        validate_dataset(bad_truth, name="p")
    bad_ext = DatasetData(np.ones((1, 2, 1)), external_inputs=np.array([[[np.nan], [1.0]]]))
    with pytest.raises(DataError, match="external_inputs contain NaN"):
        validate_dataset(bad_ext, name="p")
    with pytest.raises(ConfigError, match="output_dist"):
        validate_dataset(bad_ext, name="p", output_dist="binomial")
