"""Where a new input shape's first call spends its time on the GPU: host API calls and kernels.

    python3 benches/first_call_trace.py --out DIR

A fresh process loads a model (the load runs vsr's warm-up), then for each case calls the model
three times on the same texts under torch.profiler (CUPTI records every CUDA runtime and driver
call and every kernel in the process, candle's and cuBLAS's included). For the first call and the
second it prints the wall time, the GPU busy time and kernel count, and the host-side CUDA API
calls that took longest, summed by name: what the first call pays that the second does not.
Chrome traces of each first call go to DIR for a closer look (chrome://tracing or Perfetto).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from gpu_models import SHAPES, build_model, texts

ROOT = Path(__file__).resolve().parents[1]


def profiled_call(embed, inputs: list[str], trace_path: Path | None) -> dict[str, object]:
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as trace:
        started = time.perf_counter()
        embed(inputs)
        wall_ms = (time.perf_counter() - started) * 1e3
    if trace_path is not None:
        trace.export_chrome_trace(str(trace_path))
    kernels = 0
    busy_us = 0.0
    api: dict[str, list[float]] = collections.defaultdict(list)
    for event in trace.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels += 1
            busy_us += event.device_time_total
        else:
            api[event.name].append(event.cpu_time_total)
    top = sorted(api.items(), key=lambda item: -sum(item[1]))[:12]
    return {
        "wall_ms": round(wall_ms, 3),
        "gpu_busy_ms": round(busy_us / 1e3, 3),
        "kernels": kernels,
        "host_api_ms": {name: [len(times), round(sum(times) / 1e3, 3)] for name, times in top},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from vsr.models import Embedder

    fixture = json.loads((ROOT / "tests/fixtures/reference/modernbert-seq.json").read_text())
    bert_dir = Path(tempfile.mkdtemp(prefix="vsr-first-")) / "bert-base"
    build_model(SHAPES["bert-base"], bert_dir)
    cases = [
        ("bert-seq", ROOT / "tests/fixtures/models/bert-seq", "test texts", fixture["texts"]),
        ("bert-base", bert_dir, "10 x 40 tok", texts(40, 10, seed=1)),
        ("bert-base", bert_dir, "10 x 72 tok", texts(72, 10, seed=2)),
        ("bert-base", bert_dir, "3 x 30 tok", texts(30, 3, seed=3)),
        ("bert-base", bert_dir, "40 x 50 tok", texts(50, 40, seed=4)),
    ]
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]):
        torch.zeros(1, device="cuda")  # CUPTI's own start-up, outside every measured call
    report = []
    loaded: dict[str, Embedder] = {}
    for index, (name, directory, label, inputs) in enumerate(cases):
        if name not in loaded:
            started = time.perf_counter()
            loaded[name] = Embedder.load(directory, "cuda:0", dtype=args.dtype, normalize=False)
            print(f"loaded {name} in {(time.perf_counter() - started) * 1e3:.0f} ms", flush=True)
        embed = loaded[name].embed
        calls = [
            profiled_call(embed, inputs, args.out / f"case{index}_call{call}.json")
            for call in range(3)
        ]
        report.append({"model": name, "case": label, "calls": calls})
        print(f"\n== {name} {label}", flush=True)
        for call, result in enumerate(calls):
            print(
                f"call {call}: wall {result['wall_ms']} ms, GPU busy {result['gpu_busy_ms']} ms, "
                f"{result['kernels']} kernels"
            )
            for api_name, (count, total) in result["host_api_ms"].items():
                print(f"    {total:8.3f} ms  x{count:<4} {api_name[:90]}")
    (args.out / "first_call_trace.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
