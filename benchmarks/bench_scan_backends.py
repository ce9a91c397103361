"""Why the engine's recurrences run in hand-written kernels: one GRU scan, several ways.

Issue 4 asks to measure torch.compile / TorchScript (and CUDA graphs, which need
a GPU) against the engine's own kernels. The problem is the IC encoder of the
benchmark configuration: K = 2 recurrences (forward and reverse) of H = 64
units over T = 100 steps of E = 8 inputs, batch 150. One iteration is the
forward pass and the backward pass of ``sum(states)`` with respect to the
inputs, the [x, h] weight matrices and the biases. Prints one line per
backend, e.g.::

    native fused layer (engine default)          9.5 ms/iter   (first call 0.0 s)
    torch, hand-written backward                37.6 ms/iter   (first call 0.0 s)
    torch eager, autograd per step             320.9 ms/iter   (first call 0.3 s)
    TorchScript, autograd per step             282.3 ms/iter   (first call 0.3 s)
    torch.compile (inductor), autograd         159.8 ms/iter   (first call 76.4 s)

(2-core AMD EPYC with AVX-512, torch 2.13.0 CPU, 2 threads.) CUDA graphs are
not measured here: no GPU was available.

Usage: ``python benchmarks/bench_scan_backends.py [--threads 2] [--iters 30]
[--backends native,torch,eager,script,compile]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--backends", default="native,torch,eager,script,compile")
    args = ap.parse_args(argv)

    import torch

    from lfads_runs.engine import _ext
    from lfads_runs.engine._scan import gru_layer, gru_scan_reference, layer_projections

    torch.set_num_threads(args.threads)
    K, T, B, E, H, clip = 2, 100, 150, 8, 64, 5.0
    rev = [False, True]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, E, generator=g).requires_grad_()
    h0 = torch.zeros(K, B, H)
    w_ru = (torch.randn(K, E + H, 2 * H, generator=g) / H**0.5).requires_grad_()
    w_c = (torch.randn(K, E + H, H, generator=g) / H**0.5).requires_grad_()
    b = torch.zeros(K, 3 * H).requires_grad_()
    inputs = (x, w_ru, w_c, b)

    def engine_layer(x, wr, wc, b):
        states, _ = gru_layer(x, rev, wr, wc, b, h0, clip)
        return torch.stack(states)

    def projections(x, wr, wc, b):
        return layer_projections(x, rev, wr, wc, b)

    def reference(x, wr, wc, b):
        return gru_scan_reference(projections(x, wr, wc, b), h0, wr[:, E:], wc[:, E:], clip)

    def timed(fn, label: str, setup=None) -> None:
        if setup:
            setup()
        t0 = time.perf_counter()
        torch.autograd.grad(fn(*inputs).sum(), inputs)  # first call: compilation, caches
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            torch.autograd.grad(fn(*inputs).sum(), inputs)
            times.append(time.perf_counter() - t0)
        print(
            f"{label:40s} {statistics.median(times) * 1e3:7.1f} ms/iter"
            f"   (first call {first:.1f} s)",
            flush=True,
        )

    wanted = args.backends.split(",")
    print(f"# torch {torch.__version__}, {args.threads} threads", file=sys.stderr)
    if "native" in wanted:
        if _ext.native_available():
            timed(engine_layer, "native fused layer (engine default)")
        else:
            print("native kernels: not available (no C++ compiler)")
    if "torch" in wanted:
        timed(engine_layer, "torch, hand-written backward", lambda: _ext.set_native_enabled(False))
        _ext.set_native_enabled(None)
    if "eager" in wanted:
        timed(reference, "torch eager, autograd per step")
    if "script" in wanted:
        scripted = torch.jit.script(gru_scan_reference)
        timed(
            lambda x, wr, wc, b: scripted(
                projections(x, wr, wc, b), h0, wr[:, E:], wc[:, E:], clip
            ),
            "TorchScript, autograd per step",
        )
    if "compile" in wanted:
        try:
            compiled = torch.compile(reference, dynamic=False)
            timed(compiled, "torch.compile (inductor), autograd")
        except Exception as exc:  # report, do not hide: the other lines still count
            print(f"torch.compile (inductor): failed: {type(exc).__name__}: {exc}".splitlines()[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
