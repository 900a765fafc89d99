"""Where vsr's GPU time goes: every CUDA kernel of a vsr forward, recorded with CUPTI.

    python3 benches/profile_gpu.py [--batches 1,64] [--tokens 128]

torch.profiler's CUDA activity records all kernels launched in the process, candle's included,
so this needs no vsr-specific instrumentation. For each batch size it prints the wall time per
call, the GPU busy time, the number of kernel launches per call, and the kernels that take the
most time. Run on the GPU machine (scripts/gpu_check.sh with PROFILE=1).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_models import SHAPES, build_model, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bert-base", choices=sorted(SHAPES))
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()

    from vsr.models import Embedder

    model_dir = Path(tempfile.mkdtemp(prefix="vsr-profile-")) / args.model
    build_model(SHAPES[args.model], model_dir)
    embedder = Embedder.load(model_dir, "cuda:0", dtype=args.dtype, normalize=False)
    for batch in (int(b) for b in args.batches.split(",")):
        inputs = texts(args.tokens, batch, seed=batch)
        for _ in range(3):
            embedder.embed(inputs)
        torch.cuda.synchronize()
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as trace:
            for _ in range(args.calls):
                with record_function("vsr_call"):
                    embedder.embed(inputs)
        wall_ms = (time.perf_counter() - started) * 1e3 / args.calls
        kernels: dict[str, list[float]] = collections.defaultdict(list)
        for event in trace.events():
            if event.device_type == torch.autograd.DeviceType.CUDA and event.name != "vsr_call":
                kernels[event.name].append(event.device_time_total)
        launches = sum(len(times) for times in kernels.values()) / args.calls
        busy_ms = sum(sum(times) for times in kernels.values()) / 1e3 / args.calls
        print(
            f"\n== {args.model} {args.dtype}, batch {batch} x {args.tokens} tokens: "
            f"{wall_ms:.3f} ms/call wall, {busy_ms:.3f} ms/call GPU busy, "
            f"{launches:.0f} kernels/call =="
        )
        print(timeline(trace.events()))
        top = sorted(kernels.items(), key=lambda item: -sum(item[1]))[:18]
        for name, times in top:
            total_ms = sum(times) / 1e3 / args.calls
            print(
                f"{total_ms:8.3f} ms/call {len(times) / args.calls:6.0f}x "
                f"{sum(times) / len(times):8.1f} us avg  {name[:110]}"
            )


def timeline(events: list) -> str:  # type: ignore[type-arg]
    """Where a call's wall time goes: before the first kernel (tokenization, uploads, first
    launches), gaps between kernels (the GPU waiting for the host), after the last kernel
    (download, Python), averaged over the recorded calls."""
    calls = sorted((e.time_range.start, e.time_range.end) for e in events if e.name == "vsr_call")
    gpu = sorted(
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type == torch.autograd.DeviceType.CUDA and e.name != "vsr_call"
    )
    before = gaps = after = 0.0
    for start, end in calls:
        inside = [(s, e) for s, e in gpu if start <= s <= end]
        if not inside:
            continue
        before += inside[0][0] - start
        after += end - max(e for _, e in inside)
        covered, reach = 0.0, inside[0][0]
        for s, e in inside:
            covered += max(0.0, e - max(s, reach))
            reach = max(reach, e)
        gaps += (reach - inside[0][0]) - covered
    n = max(len(calls), 1)
    return (
        f"   timeline per call (us): before first kernel {before / n:.0f}, "
        f"GPU idle between kernels {gaps / n:.0f}, after last kernel {after / n:.0f}"
    )


if __name__ == "__main__":
    main()
