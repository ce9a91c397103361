"""Tests of lfads_runs.io.fitlog: LFADS fitlog.csv text, byte for byte."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from conftest import TF_CASES, manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfads_runs.exceptions import DataError, MissingOutputError
from lfads_runs.io.fitlog import (
    FitLogRow,
    append_fitlog_line,
    format_fitlog_line,
    read_fitlog_rows,
)
from lfads_runs.results.fitlog import FITLOG_FIELDS, FitLog, read_fit_log


@pytest.mark.parametrize("case", TF_CASES)
def test_fixture_lines_reproduced_byte_for_byte(tf_fixtures, tmp_path, case):
    """Parsing then formatting every TF fitlog.csv row gives the file's exact bytes, also via append."""
    src = tf_fixtures / case / "lfadsOutput" / "fitlog.csv"
    rows = read_fitlog_rows(src)
    assert len(rows) == manifest(case)["fitlog"]["rows"]
    assert [r.epoch for r in rows] == list(range(len(rows)))
    raw = src.read_bytes()
    assert "".join(format_fitlog_line(r) + "\n" for r in rows).encode() == raw
    out = tmp_path / "fitlog.csv"
    for r in rows:
        append_fitlog_line(out, r)
    assert out.read_bytes() == raw


def test_known_values(tf_fixtures):
    """The last row of each case holds the values LFADS printed for its last epoch (manifest)."""
    for case in TF_CASES:
        rows = read_fitlog_rows(tf_fixtures / case / "lfadsOutput" / "fitlog.csv")
        assert rows[-1] == FitLogRow(**manifest(case)["fitlog"]["last_printed"]), case
        # the KL weight ramps linearly from kl_start_step over kl_increase_steps
        ramp = manifest(case)["flags"]["train"]["kl_increase_steps"]
        assert rows[0].kl_weight == pytest.approx((rows[0].step - 1) / ramp, abs=0.005)
        assert rows[0].has_validation


def test_train_only_line_has_16_tokens(tmp_path):
    """Without validation data the LFADS 16-token line (6 spaces before l2) is written and read."""
    row = FitLogRow(
        epoch=3, step=40, total_train=12.345, total_valid=None, recon_train=10.0,
        recon_valid=None, kl_train=2.0, kl_valid=None, l2=0.123456, kl_weight=0.5,
        l2_weight=1.0,
    )  # fmt: skip
    line = format_fitlog_line(row)
    assert line == (
        "epoch,3, step,40, total,12.35, recon,10.00, kl,2.00,       "
        "l2,0.12346, klweight,0.50, l2weight,1.00"
    )
    assert len(line.split(",")) == 16
    path = tmp_path / "fitlog.csv"
    append_fitlog_line(path, row)
    (back,) = read_fitlog_rows(path)
    assert back.total_valid is None and not back.has_validation
    assert format_fitlog_line(back) == line


def test_partial_validation_fields_rejected():
    """A row with some but not all validation fields set cannot be formatted."""
    row = FitLogRow(
        epoch=0, step=1, total_train=1.0, total_valid=1.0, recon_train=1.0, recon_valid=None,
        kl_train=1.0, kl_valid=1.0, l2=0.0, kl_weight=1.0, l2_weight=1.0,
    )  # fmt: skip
    with pytest.raises(DataError, match="recon_valid|all be set"):
        format_fitlog_line(row)


@pytest.mark.parametrize(
    ("bad_line", "what"),
    [
        ("epoch,1, step,2, total,3.00", "19 comma-separated"),
        ("epoch,1, step,2, total,1,2, recon,1,2, kl,1,2, l2,1, klweight,x, l2weight,1", "number"),
        ("epoch,1, stop,2, total,1,2, recon,1,2, kl,1,2, l2,1, klweight,1, l2weight,1", "'step'"),
    ],
)
def test_malformed_line_names_file_and_line(tf_fixtures, tmp_path, bad_line, what):
    """A malformed line raises DataError naming the file and its 1-based line number."""
    good = (tf_fixtures / "ctrl1" / "lfadsOutput" / "fitlog.csv").read_text()
    path = tmp_path / "fitlog.csv"
    lines = good.splitlines()
    path.write_text("\n".join(lines[:2] + [bad_line] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="line 3") as info:
        read_fitlog_rows(path)
    assert str(path) in str(info.value) and what in str(info.value)


def test_missing_file(tmp_path):
    """A missing fit log raises MissingOutputError."""
    with pytest.raises(MissingOutputError, match="fitlog.csv"):
        read_fitlog_rows(tmp_path / "fitlog.csv")


cost = st.floats(min_value=-1e6, max_value=1e7, allow_nan=False).map(lambda x: round(x, 2))


@settings(max_examples=60, deadline=None)
@given(
    epoch=st.integers(0, 10**5), step=st.integers(0, 10**9), costs=st.lists(cost, min_size=6,
    max_size=6), l2=st.floats(0, 1e4).map(lambda x: round(x, 5)), w=st.floats(0, 1).map(
    lambda x: round(x, 2)), valid=st.booleans(),
)  # fmt: skip
def test_format_parse_round_trip(tmp_path_factory, epoch, step, costs, l2, w, valid):
    """Any row with printed precision survives format -> parse unchanged."""
    row = FitLogRow(
        epoch=epoch, step=step, total_train=costs[0], total_valid=costs[1],
        recon_train=costs[2], recon_valid=costs[3], kl_train=costs[4], kl_valid=costs[5],
        l2=l2, kl_weight=w, l2_weight=1.0,
    )  # fmt: skip
    if not valid:
        row = attrs.evolve(row, total_valid=None, recon_valid=None, kl_valid=None)
    path = tmp_path_factory.mktemp("fl") / "fitlog.csv"
    path.write_text(format_fitlog_line(row) + "\n")
    (back,) = read_fitlog_rows(path)
    assert format_fitlog_line(back) == format_fitlog_line(row)
    assert back.step == step and back.has_validation == valid


# --- lfads_runs.results.fitlog -------------------------------------------------------------


def _lve_checkpoint_step(case_dir):
    """Step of the latest checkpoint named in LFADS's checkpoint_lve pointer file."""
    for line in (case_dir / "lfadsOutput" / "checkpoint_lve").read_text().splitlines():
        if line.startswith("model_checkpoint_path:"):
            return int(line.rsplit("-", 1)[1].rstrip('"'))
    raise AssertionError("no model_checkpoint_path")


@pytest.mark.parametrize("case", TF_CASES)
def test_fit_log_on_fixtures(tf_fixtures, case):
    """FitLog reads each TF fitlog; its LVE row is the step of LFADS's last lve checkpoint here."""
    path = tf_fixtures / case / "lfadsOutput" / "fitlog.csv"
    log = read_fit_log(path)
    rows = read_fitlog_rows(path)
    assert log.n_epochs == len(rows) == manifest(case)["fitlog"]["rows"]
    assert log.steps.dtype == np.int64 and log.total_valid.dtype == np.float64
    assert log.has_validation and log.learning_rate is None and log.path == path
    assert log.to_rows() == rows
    i = log.lve_index
    eligible = (log.kl_weight == 1) & (log.l2_weight == 1)
    assert eligible[i] and log.total_valid[i] == log.total_valid[eligible].min()
    assert log.step_lve == log.steps[i] == _lve_checkpoint_step(tf_fixtures / case)
    assert log.total_valid_lve == log.total_valid[i]
    assert log.kl_train_lve == rows[i].kl_train and log.l2_lve == rows[i].l2
    assert set(log.as_dict()) == set(FITLOG_FIELDS)
    assert f"{log.n_epochs} epochs" in repr(log) and f"step {log.step_lve}" in repr(log)


def _row(step, total_valid, w=1.0):
    return FitLogRow(
        epoch=step, step=step, total_train=1.0, total_valid=total_valid, recon_train=1.0,
        recon_valid=None if total_valid is None else 1.0, kl_train=0.5,
        kl_valid=None if total_valid is None else 0.5, l2=0.1, kl_weight=w, l2_weight=w,
    )  # fmt: skip


def test_lve_rule_first_minimum_and_no_eligible_row():
    """LVE is the first minimum among weight-1 rows; with none eligible it is None (not row 1)."""
    log = FitLog.from_rows(
        [_row(1, 5.0, 0.5), _row(2, 9.0), _row(3, 7.0), _row(4, 7.0), _row(5, 8.0)]
    )
    assert log.lve_index == 2 and log.step_lve == 3 and log.total_valid_lve == 7.0
    ramping = FitLog.from_rows([_row(1, 5.0, 0.5), _row(2, 4.0, 0.99)])
    assert ramping.lve_index is None and ramping.step_lve is None
    assert "no LVE row" in repr(ramping)


def test_train_only_log_and_learning_rate():
    """16-token rows give NaN validation and no LVE; a learning-rate record is kept and checked."""
    log = FitLog.from_rows([_row(1, None), _row(2, None)], learning_rate=[0.01, 0.007])
    assert not log.has_validation and np.isnan(log.total_valid).all()
    assert log.lve_index is None
    np.testing.assert_array_equal(log.as_dict()["learning_rate"], [0.01, 0.007])
    assert log.to_rows()[0].total_valid is None
    with pytest.raises(DataError, match="learning_rate"):
        FitLog.from_rows([_row(1, 2.0)], learning_rate=[0.01, 0.02])


def test_read_fit_log_with_learning_rate(tf_fixtures):
    """read_fit_log attaches a per-epoch learning rate and reports it at the LVE row."""
    path = tf_fixtures / "stitch2" / "lfadsOutput" / "fitlog.csv"
    lr = np.linspace(0.01, 0.004, manifest("stitch2")["fitlog"]["rows"])
    log = read_fit_log(path, learning_rate=lr)
    assert log.learning_rate_lve == lr[log.lve_index]


def test_metrics_after_the_lfads_tokens_round_trip(tmp_path):
    """Selection metrics are name,value pairs after LFADS's 19 tokens; LFADS's text is kept."""
    from lfads_runs.io.fitlog import FitLogRow, append_fitlog_line, format_fitlog_line
    from lfads_runs.results import read_fit_log

    base = dict(epoch=3, step=40, total_train=1.0, total_valid=2.0, recon_train=3.0,
                recon_valid=4.0, kl_train=5.0, kl_valid=6.0, l2=0.1, kl_weight=1.0,
                l2_weight=1.0)  # fmt: skip
    plain = format_fitlog_line(FitLogRow(**base))
    row = FitLogRow(**base, metrics={"valid_cobps": 0.125, "selection_cost": 2.5})
    line = format_fitlog_line(row)
    assert line == plain + ", valid_cobps,0.125, selection_cost,2.5"
    path = tmp_path / "fitlog.csv"
    append_fitlog_line(path, FitLogRow(**base))
    append_fitlog_line(path, row)
    log = read_fit_log(path)
    assert np.isnan(log.metrics["valid_cobps"][0]) and log.metrics["valid_cobps"][1] == 0.125
    with pytest.raises(DataError, match="metric name"):
        format_fitlog_line(FitLogRow(**base, metrics={"Bad Name": 1.0}))
    path.write_text(line + ", 0.5,valid_cobps\n")
    with pytest.raises(DataError, match="line 1"):
        read_fit_log(path)
