"""The native matrix-product kernels at awkward sizes, and each of their code paths.

The engine's products run in register-blocked tiles (AVX-512 or AVX2, rows in
blocks of 6, columns in blocks of 4 or 2 vectors with the last one masked) or
in ATen where neither instruction set is targeted. These tests put sizes that
are not multiples of any block through the weight-gradient product (``mt``),
the encoders' input projection (``lin_fwd``/``lin_bwd``) and the GRU scans, and
rebuild the kernels for the other code paths this CPU can run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lfads_runs.engine import _ext  # noqa: E402
from lfads_runs.engine._scan import gru_scan, gru_scan_reference  # noqa: E402

pytestmark = pytest.mark.skipif(
    not _ext.native_available(), reason="native kernels not available (no C++ compiler)"
)
HERE = Path(__file__).resolve().parent


def _ops():
    return _ext.native()


@pytest.mark.parametrize("rows", [1, 5, 150, 1301])
@pytest.mark.parametrize(("m", "n"), [(1, 1), (7, 5), (64, 128), (13, 200), (35, 8)])
def test_mt_is_a_transposed_product(rows, m, n):
    g = torch.Generator().manual_seed(rows * 1000 + m * 10 + n)
    a = torch.randn(rows, m, generator=g)
    wide = torch.randn(rows, n + 3, generator=g)
    b = wide[:, 1 : n + 1]  # rows with a stride other than n
    got = _ops().mt(a, b)
    want = a.double().t() @ b.double()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("k", "rows", "e", "n"), [(1, 3, 1, 3), (4, 300, 8, 192), (2, 77, 35, 200)]
)
def test_input_projection_and_its_gradients(k, rows, e, n):
    from lfads_runs.engine._linear import batched_linear

    g = torch.Generator().manual_seed(rows)
    x = torch.randn(k, rows, e, generator=g, requires_grad=True)
    w = torch.randn(k, e, n, generator=g, requires_grad=True)
    b = torch.randn(k, n, generator=g, requires_grad=True)
    d = torch.randn(k, rows, n, generator=g)
    out = batched_linear(x, w, b)
    got = torch.autograd.grad((out * d).sum(), (x, w, b))
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, b))
    ref = torch.baddbmm(b64.unsqueeze(1), x64, w64)
    want = torch.autograd.grad((ref * d.double()).sum(), (x64, w64, b64))
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-4)
    for a, c in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), c, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(("k", "b", "h"), [(1, 1, 16), (2, 13, 64), (1, 150, 100), (3, 7, 33)])
def test_scan_at_model_sizes(k, b, h):
    """Forward states and all gradients of the native scan vs float64 autograd."""
    g = torch.Generator().manual_seed(b * h)
    T = 6
    ins = [
        torch.randn(k, T, b, 3 * h, generator=g) * 0.7,
        torch.randn(k, b, h, generator=g) * 0.5,
        torch.randn(k, h, 2 * h, generator=g) / h**0.5,
        torch.randn(k, h, h, generator=g) / h**0.5,
    ]
    ins = [t.requires_grad_() for t in ins]
    w = torch.randn(k, T, b, h, generator=g)
    states, last = gru_scan(*ins, 5.0)
    got = torch.autograd.grad((torch.stack(states) * w).sum() + last.sum(), ins)
    ins64 = [t.detach().double().requires_grad_() for t in ins]
    ref = gru_scan_reference(*ins64, 5.0)
    torch.testing.assert_close(torch.stack(states).double(), ref, rtol=0, atol=1e-5)
    want = torch.autograd.grad((ref * w.double()).sum() + ref[:, -1].sum(), ins64)
    for a, c in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), c, rtol=1e-4, atol=1e-4)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


VARIANTS = {
    "avx2": ("-mno-avx512f", {"avx2", "fma"}),
    "aten": ("-mno-avx512f -mno-avx2 -mno-fma", set()),
}


@pytest.mark.skipif(
    bool(os.environ.get("LFADS_RUNS_NATIVE_CFLAGS")), reason="already running a variant"
)
@pytest.mark.skipif(sys.platform != "linux", reason="x86 instruction-set variants (Linux)")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_other_code_paths_pass_the_kernel_and_gradient_tests(variant, tmp_path):
    """Rebuild the kernels without AVX-512 (and without AVX2) and rerun the kernel tests and
    the training-gradient comparison on that build, as a machine without them would."""
    flags, needs = VARIANTS[variant]
    if not needs <= _cpu_flags() or "avx512f" not in _cpu_flags() and variant == "avx2":
        pytest.skip(f"this CPU does not run the {variant} path distinctly")
    env = {
        **os.environ,
        "LFADS_RUNS_NATIVE_CFLAGS": flags,
        "LFADS_RUNS_NATIVE": "1",  # a failed build is an error, not a silent fallback
    }
    probe = subprocess.run(
        [sys.executable, "-c", "from lfads_runs.engine._ext import native; print(native().simd())"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == variant
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         str(HERE / "test_engine_native_kernels.py"),
         str(HERE / "test_engine_train_gradients.py"), "-k", "not pure_torch"],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
