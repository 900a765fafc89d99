"""Refit the domain head on a bundle's frozen branch, on CPU (issue 17; domain card, H0/H6).

``python -m vsr.training.domain_refit --out DIR [--with-domain-survey2] [--with-domain-survey3]``
reads the shipped bundle
(``--bundle``, default ``python/vsr/default_models``), outputs the pooled, normalised vector of its
``tasks`` branch (what the domain head reads: an ``embedding`` head on that branch), splits the
domain data as ``vsr train tasks`` does (whole groups, salt ``domain-test``), picks the
regularisation on a validation split of the training groups only, fits a multinomial logistic
regression (``heads.fit_linear_head``) and writes ``DIR/domain.safetensors`` and
``DIR/domain_refit.json`` (the figures of the refitted head and of the bundle's own head on the
same features: test groups, held-out sets, the share of test questions whose top probability
reaches ``--signal-threshold``). The branch and the other heads are not touched, so a refitted
domain head changes no other head's output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsr.training.dataset import Example, split_by_group
from vsr.training.features import encode_by_length
from vsr.training.heads import HeadFit, fit_linear_head, load_safetensors, save_safetensors
from vsr.training.tasks_recipe import (
    DOMAIN_HELDOUT,
    DOMAIN_HELDOUT_PACKAGES,
    DOMAIN_HELDOUT_PACKAGES2,
    DOMAIN_HELDOUT_PACKAGES3,
    DOMAIN_LABELS,
    DOMAIN_SURVEY3_FILES,
    domain_examples,
    read_files,
    read_heldout,
)

DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "default_models"
REGULARISATION = (1.0, 3.0, 10.0, 30.0, 100.0)  # H6's grid (H7 tried 0.03-100: domain card)
VALIDATION = 0.1
FEATURES = "branch_features"


def branch_encoder(bundle: Path, work: Path) -> Any:
    """The bundle with one more head: the ``tasks`` branch's pooled, normalised vector."""
    from vsr.models import EncoderBundle

    manifest = json.loads((bundle / "bundle.json").read_text())
    domain = manifest["heads"]["domain"]
    manifest["heads"][FEATURES] = {
        "kind": "embedding",
        "pooling": domain["pooling"],
        "normalize": domain["normalize"],
        "branch": domain["branch"],
    }
    for path in bundle.iterdir():
        if path.suffix == ".safetensors":
            shutil.copy(path, work / path.name)
    (work / "bundle.json").write_text(json.dumps(manifest))
    return EncoderBundle.load(work)


def encode(model: Any, texts: Sequence[str], batch: int = 64) -> np.ndarray:
    """The branch features of ``texts`` (``branch_encoder``'s extra head)."""
    return encode_by_length(texts, lambda rows: model.run(rows, heads=[FEATURES])[FEATURES], batch)


def figures(
    probabilities: np.ndarray, examples: Sequence[Example], threshold: float
) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(DOMAIN_LABELS)}
    gold = np.array([index[e.label] for e in examples])
    top = probabilities.argmax(axis=1)
    by_label = {
        label: round(float((top[gold == i] == i).mean()), 4)
        for label, i in index.items()
        if (gold == i).any()
    }
    return {
        "examples": len(examples),
        "accuracy": round(float((top == gold).mean()), 4),
        "reaches_threshold": round(float((probabilities.max(axis=1) >= threshold).mean()), 4),
        "by_label": by_label,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--with-domain-survey2", action="store_true")
    parser.add_argument("--with-domain-survey3", action="store_true")
    parser.add_argument("--signal-threshold", type=float, default=0.4)
    parser.add_argument(
        "--parity-fixture",
        type=Path,
        help="also rewrite this parity fixture's domain outputs for the refitted head (numpy "
        "reference encoder with the bundle's branch; its other heads' outputs are kept)",
    )
    parser.add_argument("--limit", type=int, help="domain examples (a quick check)")
    parser.add_argument(
        "--regularisation",
        type=lambda text: tuple(float(c) for c in text.split(",")),
        default=REGULARISATION,
        help="the values of C to choose from, comma-separated (default: H6's)",
    )
    args = parser.parse_args(argv)
    domain = domain_examples(
        args.data_dir, survey2=args.with_domain_survey2, survey3=args.with_domain_survey3
    )
    if args.limit:
        domain = domain[:: max(1, len(domain) // args.limit)]
    train, test = split_by_group(domain, 0.2, salt="domain-test")
    fit_part, validation = split_by_group(train, VALIDATION, salt="domain-head-validation")
    held: dict[str, list[Example]] = {}
    heldout_files = (
        *DOMAIN_HELDOUT,
        DOMAIN_HELDOUT_PACKAGES,
        DOMAIN_HELDOUT_PACKAGES2,
        DOMAIN_HELDOUT_PACKAGES3,
    )
    for file in heldout_files:
        if (args.data_dir / file).is_file():
            held[file] = read_heldout(args.data_dir / file)
    # The survey's own test groups apart, so the earlier test groups stay comparable.
    if args.with_domain_survey3:
        survey3 = {e.source for e in read_files(args.data_dir, DOMAIN_SURVEY3_FILES)}
        held["test groups, third survey only"] = [e for e in test if e.source in survey3]
        held["test groups, without the third survey"] = [e for e in test if e.source not in survey3]
    with tempfile.TemporaryDirectory() as work:
        model = branch_encoder(args.bundle, Path(work))
        sets = {"train": train, "test": test, **held}
        texts = sorted({e.text for rows in sets.values() for e in rows})
        vectors = encode(model, texts)
    row = {text: i for i, text in enumerate(texts)}

    def features(rows: Sequence[Example]) -> np.ndarray:
        return vectors[[row[e.text] for e in rows]]

    def fit(rows: Sequence[Example], c: float) -> HeadFit:
        return fit_linear_head(
            features(rows), [e.label for e in rows], DOMAIN_LABELS, regularization=c
        )

    choice = {}
    for c in args.regularisation:
        head = fit(fit_part, c)
        choice[c] = figures(head.probabilities(features(validation)), validation, 0.0)["accuracy"]
        print(
            f"C={c}: validation accuracy {choice[c]:.4f} ({len(validation)} examples)", flush=True
        )
    best = max(args.regularisation, key=lambda c: (choice[c], -c))
    head = fit(train, best)
    shipped = HeadFit(load_safetensors(args.bundle / "domain.safetensors"), DOMAIN_LABELS, "")
    report: dict[str, Any] = {
        "regularisation": best,
        "validation_accuracy": choice,
        "with_domain_survey2": args.with_domain_survey2,
        "with_domain_survey3": args.with_domain_survey3,
        "split": {
            "train": len(train),
            "fit": len(fit_part),
            "validation": len(validation),
            "test": len(test),
        },
        "refitted": {},
        "bundle_head": {},
    }
    for name, rows in {"test groups": test, **held}.items():
        for key, fitted in (("refitted", head), ("bundle_head", shipped)):
            report[key][name] = figures(
                fitted.probabilities(features(rows)), rows, args.signal_threshold
            )
        print(f"{name}: refitted {report['refitted'][name]['accuracy']:.4f}, bundle's head "
              f"{report['bundle_head'][name]['accuracy']:.4f}", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    save_safetensors(args.out / "domain.safetensors", head.tensors)
    (args.out / "domain_refit.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.parity_fixture:
        refresh_parity_fixture(args.parity_fixture, args.bundle, head)
    return 0


def refresh_parity_fixture(path: Path, bundle: Path, head: HeadFit) -> None:
    """The fixture's ``domain`` outputs for ``head``, on features of the numpy reference encoder
    (an implementation independent of the core) with the bundle's branch."""
    from vsr.training.features import FeatureSpec
    from vsr.training.reference_encoder import ReferenceFeatures

    manifest = json.loads((bundle / "bundle.json").read_text())
    branch = manifest["branches"][manifest["heads"]["domain"]["branch"]]
    fixture = json.loads(path.read_text(encoding="utf-8"))
    reference = ReferenceFeatures(
        FeatureSpec(max_length=int(fixture["max_length"])),
        branch=(bundle / branch["weights"], int(branch["from_layer"])),
    )
    rows = fixture["texts"]
    probabilities = head.probabilities(reference.encode([row["text"] for row in rows]))
    for row, values in zip(rows, probabilities, strict=True):
        row["domain"] = [round(float(x), 6) for x in values]
    fixture["made_by"] = (
        "embedding, jailbreak: vsr.training.finetune (PyTorch, float32, the shipped float16 "
        "branch upcast); domain: vsr.training.domain_refit (numpy reference encoder with that "
        "branch, the refitted head)"
    )
    path.write_text(json.dumps(fixture) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
