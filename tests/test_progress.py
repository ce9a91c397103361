"""Progress bars (tqdm): on a terminal for training, posterior sampling and the queue; never in
pipes or logs unless asked (``--progress``). Terminals are real pseudo-terminals (pty)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from lfads_runs import progress

needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

# Train 2 epochs and sample the posterior of two tiny datasets, logging to stderr.
ENGINE = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from lfads_runs.data.synthetic import lorenz
    from lfads_runs.engine import sample_posterior, train
    from lfads_runs.hparams import Hyperparameters
    from lfads_runs.io.lfads_input import LfadsInput, write_lfads_input

    folder, arg = Path(sys.argv[1]), sys.argv[2]
    flag = None if arg == "auto" else arg == "on"
    d = lorenz(n_datasets=2, n_conditions=4, trials_per_condition=10, n_neurons=[10, 12],
               duration_ms=100, seed=0)
    for ds in d.datasets:
        valid = np.arange(ds.counts.shape[0]) % 5 == 0
        write_lfads_input(folder / "in" / f"lfads_{ds.name}.h5",
                          LfadsInput(train_data=ds.counts[~valid], valid_data=ds.counts[valid]))
    hps = Hyperparameters(batch_size=4, factors_dim=3, gen_dim=8, ic_dim=4, ic_enc_dim=8,
                          co_dim=0, max_epochs=2)
    train(folder / "in", folder / "out", hps, seed=1, progress=flag)
    sample_posterior(folder / "in", folder / "out", hps, "posterior_push_mean", "latest",
                     seed=1, progress=flag)
    print("finished", file=sys.stderr, flush=True)
""")


def _on_terminal(cmd: list[str], cwd=None, timeout: float = 300) -> tuple[int, str]:
    """Run ``cmd`` with stderr (and stdout) on a fresh pseudo-terminal; return its output."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # A terminal of 24 x 120 characters (a new pty has 0 x 0, where tqdm draws nothing).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd)
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer is gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    rc = proc.wait(timeout=timeout)
    reader.join(30)
    os.close(master)
    return rc, b"".join(chunks).decode("utf-8", "replace")


def _piped(cmd: list[str], cwd=None) -> tuple[int, str]:
    """Run ``cmd`` with stderr on a pipe; its stderr with carriage returns kept."""
    proc = subprocess.run(cmd, capture_output=True, timeout=300, cwd=cwd)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def _lfads_runs(*args: str) -> list[str]:
    return [sys.executable, "-m", "lfads_runs", *args]


def _engine_cmd(tmp_path, arg: str) -> list[str]:
    return [sys.executable, "-c", ENGINE, str(tmp_path), arg]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_wanted_follows_the_stream_and_the_option(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    assert progress.wanted(None, _Tty()) is True
    assert progress.wanted(None, io.StringIO()) is False
    assert progress.wanted(True, io.StringIO()) is True
    assert progress.wanted(False, _Tty()) is False
    closed = io.StringIO()
    closed.close()
    assert progress.wanted(None, closed) is False
    monkeypatch.setenv("TERM", "dumb")
    assert progress.wanted(None, _Tty()) is False


def test_disabled_bar_prints_nothing():
    out = io.StringIO()
    with progress.bar(10, "x", "item", stream=out) as b:
        b.update(3)
        b.set_postfix_str("hello")
    progress.write("a line", out)
    assert out.getvalue() == "a line\n"


@needs_pty
def test_training_and_posterior_show_bars_on_a_terminal(tmp_path):
    pytest.importorskip("torch")
    rc, out = _on_terminal(_engine_cmd(tmp_path, "auto"))
    assert rc == 0, out
    assert "epoch 1" in out and "batch" in out and "\r" in out  # the epoch's bar, redrawn
    assert "posterior_push_mean" in out and "trial" in out  # the posterior's bar
    assert "Epoch:1, step:" in out and "finished" in out  # log lines still printed


def test_training_and_posterior_are_plain_lines_in_a_pipe(tmp_path):
    pytest.importorskip("torch")
    rc, err = _piped(_engine_cmd(tmp_path, "auto"))
    assert rc == 0, err
    assert "\r" not in err and "batch" not in err and "trial" not in err
    assert "Epoch:0, step:" in err and "Epoch:1, step:" in err
    rc, err = _piped(_engine_cmd(tmp_path / "forced", "on"))  # --progress in a pipe
    assert rc == 0, err
    assert "\r" in err and "epoch 0" in err and "trial" in err


@pytest.mark.slow
def test_queue_bar_on_a_terminal_lines_in_a_pipe(tmp_path):
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.dirname(__file__))
    from _queue_helpers import make_config

    cfg = make_config(tmp_path, n_params=1, epochs=1)
    one = ("--max-parallel", "1", "--threads", "1")
    rc, err = _piped(_lfads_runs("train", str(cfg), *one))
    assert rc == 0, err
    assert "queue: 2/2 finished" in err and "\r" not in err
    # On a terminal: the bar of the runs replaces the queue's state lines; run lines stay.
    if sys.platform != "win32":
        rc, out = _on_terminal(_lfads_runs("train", str(cfg), "--rerun", *one), cwd=cfg.parent)
        assert rc == 0, out
        assert "queue: 100%" in out and "2/2" in out and "\r" in out, out
        assert "queue: 2/2 finished" not in out and "start " in out
    rc, err = _piped(_lfads_runs("train", str(cfg), "--rerun", "--progress", *one))
    assert rc == 0, err
    assert "queue: 100%" in err and "\r" in err
    rc, err = _piped(_lfads_runs("train", str(cfg), "--no-progress"))  # all done: skipped
    assert rc == 0 and "\r" not in err and "queue: 0 done, 2 skipped" in err
