"""vsr (candle CUDA) against PyTorch on one GPU, side by side, on the same random-weight models.

    python3 benches/bench_gpu.py --out DIR        # on the GPU machine; scripts/gpu_check.sh runs it

Contenders, all bfloat16 unless named: vsr (text in, pooled vectors out: tokenization, forward,
mean pooling and the copy to the host), vsr float32, PyTorch eager (transformers' BertModel, SDPA
attention), PyTorch replaying a CUDA graph captured per shape, and torch.compile. PyTorch gets
token ids already on the GPU and returns mean-pooled vectors on the host. Every timing ends on
host data (vsr) or after torch.cuda.synchronize (PyTorch); the median of many runs over rotating
input sets is reported. Sections: batch-1 latency at 64/128/512 tokens, throughput at 128 tokens
over batch sizes, and the inference pool under concurrent single-text requests (p50/p99), with
and without dynamic batching; a ModernBERT-base shape at batch 1 and 64 x 128 tokens with and
without vsr's CUDA graphs. Physical floors (FLOPs over the measured bf16 matmul rate; weight
bytes over the measured copy bandwidth) are printed beside the results. The host's CPU model and
load average are recorded (they drive the end-to-end figures), and vsr logs at INFO meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_models import SHAPES, ModelShape, build_model, texts, token_ids

ROTATE = 4  # input sets cycled through, so repeated runs do not replay one cached input


def median_seconds(
    run: Callable[[int], object], *, budget_s: float = 0.6, warmup: int = 3
) -> float:
    """Median wall time of ``run(i)`` (each call ends synchronised), repeated for ``budget_s``."""
    for i in range(warmup):
        run(i)
    started = time.perf_counter()
    run(warmup)
    estimate = max(time.perf_counter() - started, 1e-6)
    repeats = int(min(300, max(7, budget_s / estimate)))
    samples = []
    for i in range(repeats):
        started = time.perf_counter()
        run(i)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def host_cpu() -> str:
    """The host's CPU model as /proc/cpuinfo names it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def environment(command: str) -> dict[str, Any]:
    import tokenizers
    import transformers

    from vsr import _core

    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "gpu": torch.cuda.get_device_name(0),
        "nvidia_smi": smi,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "vsr_core": _core.__version__,
        "vsr_cuda_build": _core.cuda_available(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": host_cpu(),
        "load_average_start": load_average(),
        "command": command,
    }


def ceilings() -> dict[str, float]:
    """The two rates the floors divide by, measured here rather than read off a datasheet."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    matmul = median_seconds(lambda _: (a @ b, torch.cuda.synchronize()), budget_s=0.5)
    source = torch.randn(256 * 2**20, device="cuda")  # 1 GiB of float32
    target = torch.empty_like(source)
    copy = median_seconds(lambda _: (target.copy_(source), torch.cuda.synchronize()), budget_s=0.5)
    return {
        "bf16_matmul_tflops": 2 * n**3 / matmul / 1e12,
        "copy_tb_per_s": 2 * source.numel() * 4 / copy / 1e12,  # bytes read + bytes written
    }


def floors_us(
    shape: ModelShape, batch: int, seq: int, limits: dict[str, float]
) -> dict[str, float]:
    compute = shape.flops(batch, seq) / (limits["bf16_matmul_tflops"] * 1e12) * 1e6
    weights = 2 * shape.encoder_parameters() / (limits["copy_tb_per_s"] * 1e12) * 1e6
    return {"compute_us": compute, "weights_us": weights, "floor_us": max(compute, weights)}


class TorchRunner:
    """transformers' BertModel in bf16 with mean pooling, eager, graph-replayed or compiled."""

    def __init__(self, model: Any, mode: str) -> None:
        self.model = model
        self.mode = mode
        self._graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self._compiled = torch.compile(model) if mode == "compile" else None

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # `or` would call len() on the module; compare with None.
        model = self._compiled if self._compiled is not None else self.model
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1)

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor) -> np.ndarray:
        mask = torch.ones_like(ids)
        if self.mode != "graph":
            return self._forward(ids, mask).float().cpu().numpy()
        graph, static_ids, output = self._graph(ids.shape[0], ids.shape[1])
        static_ids.copy_(ids)
        graph.replay()
        return output.float().cpu().numpy()

    def _graph(self, batch: int, seq: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        if (batch, seq) not in self._graphs:
            static_ids = torch.full((batch, seq), 1000, device="cuda", dtype=torch.long)
            mask = torch.ones_like(static_ids)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._forward(static_ids, mask)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                output = self._forward(static_ids, mask)
            self._graphs[(batch, seq)] = (graph, static_ids, output)
        return self._graphs[(batch, seq)]


def time_torch(runner: TorchRunner, batch: int, seq: int) -> float:
    inputs = [torch.from_numpy(token_ids(batch, seq, seed)).cuda() for seed in range(ROTATE)]
    return median_seconds(lambda i: runner(inputs[i % ROTATE]))


def time_vsr(embedder: Any, batch: int, seq: int) -> tuple[float, float]:
    """(end-to-end seconds, tokenization-only seconds) for ``batch`` texts of ``seq`` tokens."""
    sets = [texts(seq, batch, seed) for seed in range(ROTATE)]
    total = median_seconds(lambda i: embedder.embed(sets[i % ROTATE]))
    tokenize = median_seconds(lambda i: embedder.count_tokens(sets[i % ROTATE]), budget_s=0.2)
    return total, tokenize


async def drive_pool(
    pool: Any, key: Any, corpus: list[str], clients: int, seconds: float
) -> dict[str, float]:
    """``clients`` callers each sending one text at a time for ``seconds``: rate and latency."""
    latencies: list[float] = []

    async def client(index: int, stop: float) -> None:
        n = index
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await pool.run(key, [corpus[n % len(corpus)]], ["embedding"])
            latencies.append(time.perf_counter() - started)
            n += clients

    # The first 0.2 s warm the pool's threads and are not counted.
    await asyncio.gather(*(client(i, time.perf_counter() + 0.2) for i in range(clients)))
    latencies.clear()
    started = time.perf_counter()
    await asyncio.gather(*(client(i, started + seconds) for i in range(clients)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests_per_s": len(ordered) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
    }


def pool_section(
    model_dir: Path, seq: int, clients: list[int], seconds: float
) -> list[dict[str, Any]]:
    """Concurrent single-text requests through vsr's InferencePool, batching on and off."""
    from vsr.inference import InferencePool, ModelRegistry
    from vsr.inference.batching import BatchingConfig

    registry = ModelRegistry("cuda:0")
    key = registry.key(str(model_dir))
    registry.get(key)  # load (and warm up) outside the timings
    corpus = texts(seq, 512, seed=99)
    rows = []
    for batching in (True, False):
        pool = InferencePool(registry, max_workers=2, batching=BatchingConfig(enabled=batching))
        for count in clients:
            measured = asyncio.run(drive_pool(pool, key, corpus, count, seconds))
            rows.append({"batching": batching, "clients": count, **measured})
        pool.close()
    return rows


def modernbert_section(workdir: Path) -> dict[str, Any]:
    """ModernBERT-base (random weights, transformers' defaults): vsr with and without its CUDA
    graphs against PyTorch eager and graph replay, at batch 1 and 64 x 128 tokens."""
    from transformers import ModernBertConfig, ModernBertModel

    from gpu_models import VOCAB_SIZE, write_tokenizer
    from vsr.models import Embedder

    directory = workdir / "modernbert-base"
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=VOCAB_SIZE, pad_token_id=0)
    model = ModernBertModel(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    write_tokenizer(directory)
    torch_model = model.to("cuda", torch.bfloat16)
    runners = {m: TorchRunner(torch_model, m) for m in ("eager", "graph")}
    embedders = {}
    for graphs in ("1", "0"):
        os.environ["VSR_CUDA_GRAPHS"] = graphs
        embedders[graphs] = Embedder.load(directory, "cuda:0", dtype="bfloat16", normalize=False)
    os.environ.pop("VSR_CUDA_GRAPHS", None)
    check = texts(128, 8, seed=7)
    ids = torch.from_numpy(token_ids(8, 128, seed=7)).cuda()
    theirs = runners["eager"](ids)
    entry: dict[str, Any] = {"layers": config.num_hidden_layers, "hidden": config.hidden_size}
    for graphs, embedder in embedders.items():
        ours = embedder.embed(check)
        norms = np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1)
        entry[f"min_cosine_graphs_{graphs}"] = float(((ours * theirs).sum(1) / norms).min())
    rows = []
    for batch in (1, 64):
        row: dict[str, Any] = {"batch": batch, "tokens": 128}
        for graphs, embedder in embedders.items():
            total, _ = time_vsr(embedder, batch, 128)
            row["vsr_graphs_ms" if graphs == "1" else "vsr_eager_ms"] = total * 1e3
        for mode, runner in runners.items():
            try:
                row[f"torch_{mode}_ms"] = time_torch(runner, batch, 128) * 1e3
            except Exception as error:  # a capture transformers' ModernBERT does not allow
                row[f"torch_{mode}_ms"] = None
                row[f"torch_{mode}_error"] = repr(error)[:200]
        rows.append(row)
        print("modernbert-base", json.dumps(row), flush=True)
    entry["rows"] = rows
    del embedders, runners, torch_model
    torch.cuda.empty_cache()
    return entry


def run(args: argparse.Namespace) -> dict[str, Any]:
    from vsr.models import Embedder

    results: dict[str, Any] = {"environment": environment(" ".join(sys.argv))}
    results["ceilings"] = limits = ceilings()
    print(json.dumps(results, indent=2), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="vsr-bench-"))
    for name in args.models:
        shape = SHAPES[name]
        model_dir = workdir / name
        reference = build_model(shape, model_dir)
        torch_model = reference.to("cuda", torch.bfloat16)
        runners = {m: TorchRunner(torch_model, m) for m in ("eager", "graph")}
        started = time.perf_counter()
        vsr = {
            "bfloat16": Embedder.load(model_dir, "cuda:0", dtype="bfloat16", normalize=False),
            "float32": Embedder.load(model_dir, "cuda:0", dtype="float32", normalize=False),
        }
        load_s = time.perf_counter() - started
        check = texts(128, 8, seed=7)
        ids = torch.from_numpy(token_ids(8, 128, seed=7)).cuda()
        ours = vsr["bfloat16"].embed(check)
        theirs = runners["eager"](ids)
        cosine = (
            (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        )
        entry: dict[str, Any] = {
            "load_s_two_dtypes": load_s,
            "min_cosine_vsr_vs_torch": float(cosine.min()),
            "torch_attention": str(torch_model.config._attn_implementation),
        }
        latency = []
        for seq in args.latency_tokens:
            row: dict[str, Any] = {"tokens": seq, **floors_us(shape, 1, seq, limits)}
            for dtype, embedder in vsr.items():
                total, tokenize = time_vsr(embedder, 1, seq)
                row[f"vsr_{dtype}_ms"] = total * 1e3
                row[f"vsr_{dtype}_tokenize_ms"] = tokenize * 1e3
            for mode, runner in runners.items():
                row[f"torch_{mode}_ms"] = time_torch(runner, 1, seq) * 1e3
            latency.append(row)
            print(name, "latency", json.dumps(row), flush=True)
        throughput = []
        compiled = TorchRunner(torch_model, "compile") if args.compile_batches else None
        for batch in args.batches:
            seq = args.throughput_tokens
            tokens = batch * seq
            row = {"batch": batch, **floors_us(shape, batch, seq, limits)}
            total, tokenize = time_vsr(vsr["bfloat16"], batch, seq)
            row["vsr_bfloat16_tok_s"] = tokens / total
            row["vsr_bfloat16_tokenize_ms"] = tokenize * 1e3
            for mode, runner in runners.items():
                row[f"torch_{mode}_tok_s"] = tokens / time_torch(runner, batch, seq)
            if compiled is not None and batch in args.compile_batches:
                row["torch_compile_tok_s"] = tokens / time_torch(compiled, batch, seq)
            throughput.append(row)
            print(name, "throughput", json.dumps(row), flush=True)
        entry |= {"latency": latency, "throughput": throughput}
        if args.pool_seconds > 0:
            entry["pool"] = pool_section(model_dir, 128, args.pool_clients, args.pool_seconds)
        results[name] = entry
        del vsr, runners, compiled, torch_model
        torch.cuda.empty_cache()
    if args.modernbert:
        try:
            results["modernbert-base"] = modernbert_section(workdir)
        except Exception as error:
            print("modernbert section failed:", repr(error), flush=True)
            results["modernbert-base"] = {"error": repr(error)[:500]}
    results["environment"]["load_average_end"] = load_average()
    return results


def markdown(results: dict[str, Any]) -> str:
    env, limits = results["environment"], results["ceilings"]
    lines = [
        f"GPU: {env['gpu']} ({env['nvidia_smi']}); "
        f"torch {env['torch']} (CUDA {env['torch_cuda']}), "
        f"transformers {env['transformers']}, vsr core {env['vsr_core']}, Python {env['python']}",
        f"Measured ceilings: bf16 matmul {limits['bf16_matmul_tflops']:.0f} TFLOP/s, "
        f"copy {limits['copy_tb_per_s']:.2f} TB/s (read + write)",
        f"Host: {env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} logical cores "
        f"({env.get('cpu_affinity', '?')} usable); load average (1/5/15 min) "
        f"{env.get('load_average_start', '?')} at start, {env.get('load_average_end', '?')} at end",
        f"Command: `{env['command']}`",
    ]
    for name in SHAPES:
        if name not in results:
            continue
        entry = results[name]
        lines += [
            "",
            f"### {name}: batch-1 latency (ms, median; vsr includes tokenization)",
            f"vsr bf16 vs torch fp32 min cosine {entry['min_cosine_vsr_vs_torch']:.5f}",
            "",
            "| tokens | vsr bf16 | vsr tokenize | vsr fp32 | torch eager | torch graph | floor |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in entry["latency"]:
            lines.append(
                f"| {r['tokens']} | {r['vsr_bfloat16_ms']:.3f} "
                f"| {r['vsr_bfloat16_tokenize_ms']:.3f} | {r['vsr_float32_ms']:.3f} "
                f"| {r['torch_eager_ms']:.3f} | {r['torch_graph_ms']:.3f} "
                f"| {r['floor_us'] / 1e3:.3f} |"
            )
        lines += [
            "",
            f"### {name}: throughput at 128 tokens (M tokens/s, bf16)",
            "",
            "| batch | vsr | vsr tokenize ms | torch eager | torch graph | torch.compile | floor |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in entry["throughput"]:
            compiled = r.get("torch_compile_tok_s")
            floor = r["batch"] * 128 / (r["floor_us"] / 1e6) / 1e6
            lines.append(
                f"| {r['batch']} | {r['vsr_bfloat16_tok_s'] / 1e6:.2f} | "
                f"{r['vsr_bfloat16_tokenize_ms']:.2f} | {r['torch_eager_tok_s'] / 1e6:.2f} | "
                f"{r['torch_graph_tok_s'] / 1e6:.2f} | "
                f"{'-' if compiled is None else f'{compiled / 1e6:.2f}'} | {floor:.1f} |"
            )
        if "pool" in entry:
            lines += [
                "",
                f"### {name}: InferencePool, concurrent single-text requests of 128 tokens",
                "",
                "| batching | clients | req/s | p50 ms | p99 ms |",
                "|---|---:|---:|---:|---:|",
            ]
            lines += [
                f"| {'on' if r['batching'] else 'off'} | {r['clients']} | "
                f"{r['requests_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |"
                for r in entry["pool"]
            ]
    modern = results.get("modernbert-base")
    if modern and "rows" in modern:
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        lines += [
            "",
            f"### modernbert-base ({modern['layers']} layers, hidden {modern['hidden']}): "
            "128 tokens, ms per call (median; vsr includes tokenization)",
            f"vsr bf16 vs torch min cosine: with graphs {modern['min_cosine_graphs_1']:.5f}, "
            f"without {modern['min_cosine_graphs_0']:.5f}",
            "",
            "| batch | vsr graphs | vsr eager | torch eager | torch graph |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['batch']} | {fmt(r['vsr_graphs_ms'])} | {fmt(r['vsr_eager_ms'])} | "
            f"{fmt(r.get('torch_eager_ms'))} | {fmt(r.get('torch_graph_ms'))} |"
            for r in modern["rows"]
        ]
    elif modern:
        lines += ["", f"modernbert-base: {modern.get('error')}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json/.md")
    parser.add_argument(
        "--models",
        nargs="*",
        default=list(SHAPES),
        choices=list(SHAPES),
        help="BERT-family shapes to run; none (a bare --models) runs only the ModernBERT section",
    )
    parser.add_argument("--latency-tokens", nargs="+", type=int, default=[64, 128, 512])
    parser.add_argument("--throughput-tokens", type=int, default=128)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32, 64, 128, 256])
    parser.add_argument("--compile-batches", nargs="*", type=int, default=[128])
    parser.add_argument("--pool-clients", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--pool-seconds", type=float, default=1.5)
    parser.add_argument("--no-modernbert", dest="modernbert", action="store_false")
    args = parser.parse_args()
    # INFO: the pool logs a debug line per batch, which would otherwise be timed too.
    from vsr.observability.logging import configure_logging

    configure_logging("console", "info")
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    (args.out / "bench_gpu.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (args.out / "bench_gpu.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
