"""The inference pool under load on CPU: concurrent single-text clients, the default bundle.

Each of N clients sends one prompt at a time (real prompts from the committed held-out sets,
8 to ~60 words) through ``InferencePool.run`` with the three heads the default config reads
(embedding, domain, jailbreak) and waits for the answer before sending the next; batching as the
config's defaults set it. Reported per client count: requests/s and p50/p99 latency.

Run: `.venv/bin/python benches/bench_pool.py [--dtype int8] [--seconds 10]`; for a before/after
comparison run it once per build (PYTHONPATH pointing at each) and label the runs (--label).

On a GPU: `--device cuda:0` (bfloat16 unless --dtype says otherwise). The bundle's encoder can be
replaced with `--encoder DIR` (the bundle's heads and branch on another all-MiniLM-L6-v2-shaped
encoder): the GPU machine cannot receive the 90 MB packaged weights, so scripts/gpu_issue14.sh
builds a random-weight encoder of the same shape with MiniLM's own tokenizer there; speed does
not depend on weight values, decisions do (they are meaningless with such an encoder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADS = ["embedding", "domain", "jailbreak"]
PROMPT_FILES = ("data/domain/heldout_requests.jsonl", "data/heldout/benign_written.jsonl")


def prompts() -> list[str]:
    texts = []
    for name in PROMPT_FILES:
        for line in (ROOT / name).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


async def drive(
    pool: Any, key: Any, corpus: list[str], clients: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []

    async def client(index: int, stop: float) -> None:
        n = index
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await pool.run(key, [corpus[n % len(corpus)]], HEADS)
            latencies.append(time.perf_counter() - started)
            n += clients

    # The first second warms the pool's threads and is not counted.
    await asyncio.gather(*(client(i, time.perf_counter() + 1.0) for i in range(clients)))
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,16,128")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dtype", default=None, help="e.g. int8 (default: the CPU's float32)")
    parser.add_argument("--label", default="", help="names this build in the table")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--encoder", type=Path, default=None, help="replace the bundle's encoder")
    parser.add_argument(
        "--ms-per-1k-tokens",
        type=float,
        default=None,
        help="the batching config's fair-order weight (default: the config's default)",
    )
    args = parser.parse_args()

    import vsr
    from vsr.observability.logging import configure_logging

    # INFO: the pool logs a debug line per batch, which would otherwise be timed too.
    configure_logging("console", "info")
    from vsr.inference import InferencePool, ModelRegistry
    from vsr.inference.registry import load_encoder_model

    def loader(model_dir: Path, device: str) -> Any:
        if args.dtype is None:
            return load_encoder_model(model_dir, device)
        from vsr import models
        from vsr.inference.registry import _BundleModel

        return _BundleModel(models.EncoderBundle.load(model_dir, device, dtype=args.dtype))

    bundle = "vsr-default"
    if args.encoder is not None:
        from vsr.model_files import resolve_model_dir

        bundle = tempfile.mkdtemp(prefix="vsr-bundle-")
        shutil.copytree(resolve_model_dir("vsr-default"), bundle, dirs_exist_ok=True)
        manifest_path = Path(bundle) / "bundle.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["encoder"] = str(args.encoder.resolve())
        manifest_path.write_text(json.dumps(manifest, indent=2))
    registry = ModelRegistry(args.device, loader=loader)
    key = registry.key(bundle)
    registry.get(key)
    corpus = prompts()
    from vsr.config.batching import BatchingConfig

    # None (the default) is the config's default too: the encoder's measured cost.
    pool = InferencePool(registry, batching=BatchingConfig(ms_per_1k_tokens=args.ms_per_1k_tokens))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    print(
        f"machine: {platform.machine()}, {cpu}, {os.cpu_count()} logical cores;"
        f" load average {os.getloadavg()[0]:.2f}; device {args.device}"
        + (f", encoder {args.encoder} (random weights, MiniLM shape)" if args.encoder else "")
    )
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(
        f"versions: vsr {vsr.__version__} from {Path(vsr.__file__).parent},"
        f" Python {platform.python_version()}"
    )
    print()
    print("| build | dtype | clients | requests/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|---:|")
    default_dtype = "float32" if args.device == "cpu" else "bfloat16"
    for count in (int(c) for c in args.clients.split(",")):
        measured = asyncio.run(drive(pool, key, corpus, count, args.seconds))
        print(
            f"| {args.label} | {args.dtype or default_dtype} | {count} | "
            f"{measured['requests_per_s']:,.1f} | {measured['p50_ms']:.1f} | "
            f"{measured['p99_ms']:.1f} |",
            flush=True,
        )
    pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
