"""GPU kernels of one vsr ModernBERT-base call (random weights, bf16, eager: VSR_CUDA_GRAPHS=0),
recorded with CUPTI as benches/profile_gpu.py does for the BERT shapes; run once per path
(VSR_MODERNBERT_GENERIC=0 / 1) by run.sh.

    python3 benches/results/modernbert_s26/profile_modernbert.py [--batch 64] [--tokens 128]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gpu_models import texts, write_tokenizer
from profile_gpu import timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    from transformers import ModernBertConfig, ModernBertModel

    os.environ["VSR_CUDA_GRAPHS"] = "0"
    from vsr.models import Embedder

    directory = Path(tempfile.mkdtemp(prefix="vsr-modernbert-")) / "modernbert-base"
    torch.manual_seed(0)
    ModernBertModel(ModernBertConfig(vocab_size=30_522, pad_token_id=0)).save_pretrained(directory)
    write_tokenizer(directory)
    embedder = Embedder.load(directory, "cuda:0", dtype="bfloat16", normalize=False)
    inputs = texts(args.tokens, args.batch, seed=1)
    for _ in range(3):
        embedder.embed(inputs)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as trace:
        for _ in range(args.calls):
            with record_function("vsr_call"):
                embedder.embed(inputs)
    kernels: dict[str, list[float]] = collections.defaultdict(list)
    for event in trace.events():
        if event.device_type == torch.autograd.DeviceType.CUDA and event.name != "vsr_call":
            kernels[event.name].append(event.device_time_total)
    busy_ms = sum(sum(t) for t in kernels.values()) / 1e3 / args.calls
    launches = sum(len(t) for t in kernels.values()) / args.calls
    generic = os.environ.get("VSR_MODERNBERT_GENERIC", "0")
    print(
        f"== modernbert-base bf16 {args.batch} x {args.tokens}, generic={generic}: "
        f"{busy_ms:.3f} ms/call GPU busy, {launches:.0f} kernels/call =="
    )
    print(timeline(trace.events()))
    for name, times in sorted(kernels.items(), key=lambda item: -sum(item[1]))[:16]:
        print(
            f"{sum(times) / 1e3 / args.calls:8.3f} ms/call {len(times) / args.calls:5.0f}x "
            f"{sum(times) / len(times):8.1f} us avg  {name[:100]}"
        )


if __name__ == "__main__":
    main()
