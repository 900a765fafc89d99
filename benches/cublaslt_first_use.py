"""Which part of cuBLASLt's first product at a new row count costs milliseconds (GPU machine).

    python3 benches/cublaslt_first_use.py [heuristic|reuse] [seed]

Calls cuBLASLt through ctypes (the library PyTorch's wheel ships) for y = x Wᵀ + b in bfloat16
(W 3072 x 768, BIAS epilogue, as vsr's linear layers), at 20 random row counts never used before
in the process. `heuristic`: each row count asks the heuristic for its own algorithm (timed),
then runs it twice (timed, synchronised); `reuse`: every row count runs the algorithm the
heuristic picked for 1,024 rows, already run once. On an H200 the heuristic took 0.2-0.3 ms, a
newly picked algorithm's first product 4-5 ms (its kernel loaded on first use, whatever
CUDA_MODULE_LOADING says) and the reused one 0.0-0.1 ms at every row count tried
(benches/results/gemm_buckets_s30/diagnosis): the reason cuda_lt.rs picks algorithms per
power-of-two bucket of row counts.
"""

from __future__ import annotations

import ctypes
import glob
import os
import random
import sys
import sysconfig
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

COMPUTE_32F = 68
R_32F = 0
R_16BF = 14
DESC_TRANSA = 3
DESC_EPILOGUE = 7
DESC_BIAS_POINTER = 8
EPILOGUE_BIAS = 4
PREF_MAX_WORKSPACE = 1
WORKSPACE = 32 << 20
OUT, IN = 3072, 768


class Algo(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64 * 8)]


class Heuristic(ctypes.Structure):
    _fields_ = [
        ("algo", Algo),
        ("workspace", ctypes.c_size_t),
        ("state", ctypes.c_int),
        ("waves", ctypes.c_float),
        ("reserved", ctypes.c_int * 4),
    ]


def check(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"cuBLASLt {what}: status {status}")


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    torch.cuda.synchronize()
    started = time.perf_counter()
    result = call()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1e3, result


class Product:
    """One bf16 product shape's descriptors on a shared handle."""

    def __init__(self, lib: ctypes.CDLL, handle: ctypes.c_void_p, rows: int, bias: torch.Tensor):
        self.lib, self.handle, self.rows = lib, handle, rows
        self.desc = ctypes.c_void_p()
        check(lib.cublasLtMatmulDescCreate(ctypes.byref(self.desc), COMPUTE_32F, R_32F), "desc")
        for attribute, value, size in (
            (DESC_TRANSA, ctypes.c_int32(1), 4),
            (DESC_EPILOGUE, ctypes.c_int32(EPILOGUE_BIAS), 4),
            (DESC_BIAS_POINTER, ctypes.c_uint64(bias.data_ptr()), 8),
        ):
            check(
                lib.cublasLtMatmulDescSetAttribute(self.desc, attribute, ctypes.byref(value), size),
                "attr",
            )
        self.weight = self.layout(IN, OUT, IN)
        self.input = self.layout(IN, rows, IN)
        self.output = self.layout(OUT, rows, OUT)

    def layout(self, rows: int, cols: int, ld: int) -> ctypes.c_void_p:
        layout = ctypes.c_void_p()
        status = self.lib.cublasLtMatrixLayoutCreate(
            ctypes.byref(layout),
            R_16BF,
            ctypes.c_uint64(rows),
            ctypes.c_uint64(cols),
            ctypes.c_int64(ld),
        )
        check(status, "layout")
        return layout

    def heuristic(self, pref: ctypes.c_void_p) -> Algo:
        result, count = Heuristic(), ctypes.c_int(0)
        status = self.lib.cublasLtMatmulAlgoGetHeuristic(
            self.handle,
            self.desc,
            self.weight,
            self.input,
            self.output,
            self.output,
            pref,
            1,
            ctypes.byref(result),
            ctypes.byref(count),
        )
        check(status, "heuristic")
        return result.algo

    def run(
        self,
        algo: Algo,
        weight: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
        space: torch.Tensor,
    ) -> int:
        alpha, beta = ctypes.c_float(1.0), ctypes.c_float(0.0)
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        out = ctypes.c_void_p(y.data_ptr())
        status: int = self.lib.cublasLtMatmul(
            self.handle,
            self.desc,
            ctypes.byref(alpha),
            ctypes.c_void_p(weight.data_ptr()),
            self.weight,
            ctypes.c_void_p(x.data_ptr()),
            self.input,
            ctypes.byref(beta),
            out,
            self.output,
            out,
            self.output,
            ctypes.byref(algo),
            ctypes.c_void_p(space.data_ptr()),
            ctypes.c_size_t(WORKSPACE),
            stream,
        )
        return status


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "heuristic"
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    root = os.path.join(sysconfig.get_paths()["purelib"], "nvidia")
    lib = ctypes.CDLL(
        sorted(glob.glob(os.path.join(root, "**", "libcublasLt.so*"), recursive=True))[0]
    )
    torch.zeros(1, device="cuda")
    handle = ctypes.c_void_p()
    check(lib.cublasLtCreate(ctypes.byref(handle)), "create")
    pref = ctypes.c_void_p()
    check(lib.cublasLtMatmulPreferenceCreate(ctypes.byref(pref)), "preference")
    size = ctypes.c_uint64(WORKSPACE)
    check(
        lib.cublasLtMatmulPreferenceSetAttribute(pref, PREF_MAX_WORKSPACE, ctypes.byref(size), 8),
        "pref",
    )

    def tensor(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device="cuda", dtype=torch.bfloat16)

    weight, bias = tensor(OUT, IN), tensor(OUT)
    space = torch.empty(WORKSPACE, dtype=torch.uint8, device="cuda")
    reference = Product(lib, handle, 1024, bias)
    reference_algo = reference.heuristic(pref)
    for _ in range(3):
        check(
            reference.run(reference_algo, weight, tensor(1024, IN), tensor(1024, OUT), space),
            "matmul",
        )
    totals = [0.0, 0.0, 0.0]
    failed = 0
    rows_report = []
    for _ in range(20):
        rows = rng.randint(20, 3000)
        product = Product(lib, handle, rows, bias)
        x, y = tensor(rows, IN), tensor(rows, OUT)
        if mode == "heuristic":
            ask_ms, algo = timed(partial(product.heuristic, pref))
        else:
            ask_ms, algo = 0.0, reference_algo
        call = partial(product.run, algo, weight, x, y, space)
        first_ms, status = timed(call)
        failed += status != 0
        second_ms, _ = timed(call)
        totals = [totals[0] + ask_ms, totals[1] + first_ms, totals[2] + second_ms]
        rows_report.append(f"{rows}:h{ask_ms:.1f} m{first_ms:.1f}/{second_ms:.2f}")
    print(
        f"{mode}: heuristic {totals[0]:.1f} ms, first products {totals[1]:.1f} ms, "
        f"second products {totals[2]:.1f} ms, failed {failed}"
    )
    print(" ".join(rows_report))


if __name__ == "__main__":
    main()
