"""The native matrix-product kernels at awkward sizes, and each of their code paths.

The engine's products run in register-blocked tiles (AVX-512 or AVX2, rows in
blocks of 6, columns in blocks of 4 or 2 vectors with the last one masked) or
in ATen where neither instruction set is targeted. These tests put sizes that
are not multiples of any block through the weight-gradient product (``mt``),
the controller's input projection (``lin_fwd``/``lin_bwd``) and the fused GRU
layers against a step-by-step cell, and
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


def layer_reference(x, rev, w_ru, w_c, b, h0, clip):
    """Spec §2 step by step in TensorFlow's form ([x, h] times one matrix), for autograd."""
    H = h0.shape[-1]
    out = []
    for k, r in enumerate(rev):
        xs = x.flip(0) if r else x
        h, hs = h0[k], []
        for t in range(x.shape[0]):
            g = torch.sigmoid(torch.cat((xs[t], h), -1) @ w_ru[k] + b[k, : 2 * H])
            rr, u = g[:, :H], g[:, H:]
            c = torch.tanh(torch.cat((xs[t], rr * h), -1) @ w_c[k] + b[k, 2 * H :])
            h = torch.clamp(u * h + (1 - u) * c, -clip, clip)
            hs.append(h)
        out.append(torch.stack(hs))
    return torch.stack(out)


LAYERS = {  # K, T, B, E, H, reversed recurrences, clip, scale of h0
    "one_row_no_input": (1, 6, 1, 0, 16, [False], 5.0, 1.0),
    "encoder_pair": (2, 6, 13, 8, 64, [False, True], 5.0, 1.0),
    "wide_batch": (1, 5, 150, 3, 100, [True], 5.0, 1.0),
    "odd_sizes": (3, 7, 7, 5, 33, [False, True, False], 5.0, 1.0),
    "clipped_first_step": (2, 5, 9, 4, 20, [False, True], 5.0, 8.0),
    "clip_below_one": (2, 5, 9, 4, 20, [True, False], 0.9, 1.0),
}


def _layer_inputs(K, T, B, E, H, h0_scale, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    ins = [
        torch.randn(T, B, E, generator=g, dtype=dtype),
        torch.randn(K, E + H, 2 * H, generator=g, dtype=dtype) / (E + H) ** 0.5,
        torch.randn(K, E + H, H, generator=g, dtype=dtype) / (E + H) ** 0.5,
        torch.randn(K, 3 * H, generator=g, dtype=dtype) * 0.5,
        torch.randn(K, B, H, generator=g, dtype=dtype) * 0.5 * h0_scale,
    ]
    return [t.requires_grad_() for t in ins], torch.randn(K, T, B, H, generator=g, dtype=dtype)


def _check_layer(case, dtype, atol_fwd, atol_bwd):
    from lfads_runs.engine._scan import gru_layer

    K, T, B, E, H, rev, clip, h0_scale = LAYERS[case]
    ins, w = _layer_inputs(K, T, B, E, H, h0_scale, dtype, seed=len(case))
    states, last = gru_layer(ins[0], rev, *ins[1:], clip)
    # Gradients through every state of recurrence 0 and through all final states.
    got = torch.autograd.grad((states[0] * w[0]).sum() + (last * w[:, -1]).sum(), ins)
    ins64 = [t.detach().double().requires_grad_() for t in ins]
    ref = layer_reference(ins64[0], rev, *ins64[1:], clip)
    torch.testing.assert_close(torch.stack(states).double(), ref, rtol=0, atol=atol_fwd)
    torch.testing.assert_close(last.double(), ref[:, -1], rtol=0, atol=atol_fwd)
    w64 = w.double()
    want = torch.autograd.grad((ref[0] * w64[0]).sum() + (ref[:, -1] * w64[:, -1]).sum(), ins64)
    for name, a, c in zip(("x", "w_ru", "w_c", "b", "h0"), got, want, strict=True):
        torch.testing.assert_close(a.double(), c, rtol=1e-4, atol=atol_bwd, msg=name)
    if clip < 1 or h0_scale > 1:
        assert (ref.abs() == clip).any()  # the clip was exercised


@pytest.mark.parametrize("case", list(LAYERS))
def test_native_gru_layer_matches_the_step_by_step_cell(case):
    """Fused input projection, both directions, clip on the first or every step: states and
    the gradients of x, weights, biases and h0 against float64 autograd."""
    _check_layer(case, torch.float32, 1e-5, 1e-4)


@pytest.mark.parametrize("case", ["encoder_pair", "clip_below_one"])
def test_torch_gru_layer_matches_the_step_by_step_cell(case):
    """The path without native kernels (projections, then GruScan), in float64."""
    _ext.set_native_enabled(False)
    try:
        _check_layer(case, torch.float64, 1e-12, 1e-10)
    finally:
        _ext.set_native_enabled(None)


def _cpu_flags() -> set[str]:
    line = _ext.cpu_flags_line()
    return set(line.split(":", 1)[1].split()) if line else set()


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
