"""The Ray executor with a local instance and two logical GPUs (skipped without ray)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from _queue_helpers import attempts, load, make_config, state  # noqa: E402

from lfads_runs.executors import get_executor  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray (2 CPUs, 2 fake GPUs) for the module; its files in a temporary folder."""
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    old = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no ~/.ray/auth_token
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False)
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = old
    shutil.rmtree(tmp, ignore_errors=True)


def test_ray_executor_fractional_gpus(tmp_path, ray_instance):
    """One task per run with half a GPU each; Ray's GPU choice is recorded; done runs skip."""
    rc = load(make_config(tmp_path, n_params=1))
    ex = get_executor("ray", num_gpus=0.5, num_cpus=1, device="cpu")
    res = rc.train(executor=ex, quiet=True)
    assert res.summary() == "2 done, 0 skipped, 0 failed", res.outcomes
    for run in rc.all_runs:
        st = state(run)
        assert st["executor"] == "ray" and st["gpu"] in ("0", "1") and st["device"] == "cpu"
        assert run.paths.done_marker.is_file() and "executor ray" in run.paths.log_file.read_text()
    assert ray.is_initialized()  # a Ray the queue did not start is left running
    again = rc.train(executor=get_executor("ray", device="cpu"), quiet=True)
    assert again.summary() == "0 done, 2 skipped, 0 failed"
    assert all(attempts(r) == 1 for r in rc.all_runs)
