"""Threads: passive OpenMP waiting for runs that share the cores, every core by default, and
results that do not depend on how the kernels hand their rows out to threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _policy_after_import(env_policy: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    code = "import os, lfads_runs; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_leaves_the_openmp_wait_policy_alone():
    assert _policy_after_import(None) == "unset"
    assert _policy_after_import("ACTIVE") == "ACTIVE"


def test_runs_sharing_the_cores_wait_passively_unless_the_user_chose():
    from lfads_runs.executors._forkserver import openmp_env

    assert openmp_env({}, shared=True)["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in openmp_env({}, shared=False)  # alone: spinning is faster
    assert openmp_env({"OMP_WAIT_POLICY": "ACTIVE"}, shared=True)["OMP_WAIT_POLICY"] == "ACTIVE"


def test_local_executor_chooses_passive_waiting_only_for_parallel_runs(monkeypatch):
    from lfads_runs.executors.local import LocalExecutor

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    one = LocalExecutor(max_parallel=1, gpus=[])
    two = LocalExecutor(max_parallel=2, gpus=[])
    assert "OMP_WAIT_POLICY" not in one.child_env(one.slots[0])
    assert two.child_env(two.slots[0])["OMP_WAIT_POLICY"] == "PASSIVE"


def test_demo_trains_on_every_core():
    from lfads_runs.demo import default_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_threads() == cores


torch = pytest.importorskip("torch")


@pytest.mark.parametrize(("B", "T"), [(1, 3), (7, 5), (150, 20), (301, 4)])
def test_kernel_results_do_not_depend_on_the_thread_count(B, T):
    """Forward states and all gradients of a fused GRU layer pair: bit-identical with 1
    thread (one block) and with 4 (rows handed out in blocks); the weight gradients'
    block sums are added in a fixed order."""
    from lfads_runs.engine import _ext
    from lfads_runs.engine._scan import gru_layer

    if not _ext.native_available():
        pytest.skip("native kernels not available")
    K, E, H = 2, 6, 16
    g = torch.Generator().manual_seed(B)
    ins = [
        torch.randn(T, B, E, generator=g),
        torch.randn(K, E + H, 2 * H, generator=g) / (E + H) ** 0.5,
        torch.randn(K, E + H, H, generator=g) / (E + H) ** 0.5,
        torch.randn(K, 3 * H, generator=g) * 0.5,
        torch.randn(K, B, H, generator=g) * 0.5,
    ]
    w = torch.randn(K, T, B, H, generator=g)

    def run(threads: int):
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            xs = [t.clone().requires_grad_() for t in ins]
            states, last = gru_layer(xs[0], [False, True], *xs[1:], 5.0)
            grads = torch.autograd.grad((torch.stack(states) * w).sum() + last.sum(), xs)
            return [torch.stack(states).detach(), *grads]
        finally:
            torch.set_num_threads(old)

    one = run(1)
    for threads in (2, 4):
        many = run(threads)
        # States and input gradients row by row: identical; weight sums: same block order
        # only for the same thread count, so equal to round-off across counts.
        for name, a, b in zip(("states", "x", "w_ru", "w_c", "b", "h0"), one, many, strict=True):
            if name in ("states", "x", "h0"):
                assert torch.equal(a, b), (name, threads)
            else:
                scale = float(a.abs().max())
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6 * scale, msg=name)
        again = run(threads)
        assert all(torch.equal(a, b) for a, b in zip(many, again, strict=True))
