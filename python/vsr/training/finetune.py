"""``vsr train tasks``: fine-tune the branch shared by the domain and jailbreak heads, choose,
calibrate, report and export it.

``vsr train tasks --device cuda:0 --out python/vsr/default_models`` (torch is imported only by
``vsr.training.tasks_model``; it runs on the lent GPU machine, never in ``make test``; see
``scripts/gpu_train.sh``). The data are ``vsr.training.tasks_recipe``'s; the model and its export
``vsr.training.tasks_model``'s.

With ``--compare`` it first trains every candidate (frozen + linear, top 1 or top 2 layers shared,
top 2 per task) on the same group split and prints a table; the shipped one is chosen by a rule
(``choose``), not by hand. Everything reported is on groups held out of training (``test``) or on
the held-out evaluation sets, and the jailbreak threshold comes from the calibration split alone.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from vsr.training.dataset import Example, split_by_group
from vsr.training.finetune_args import data_flags, parser
from vsr.training.tasks_export import export, parity_fixture, write_manifest
from vsr.training.tasks_model import (
    CANDIDATES,
    Candidate,
    Encoder,
    TaskModel,
    _torch,
    probabilities,
    train_model,
    windowed_attack,
)
from vsr.training.tasks_recipe import (
    BENIGN,
    DOMAIN_HELDOUT,
    DOMAIN_HELDOUT_PACKAGES,
    DOMAIN_HELDOUT_PACKAGES2,
    DOMAIN_LABELS,
    HELDOUT,
    JAILBREAK_LABELS,
    calibrates,
    domain_examples,
    jailbreak_examples,
    read_heldout,
)
from vsr.training.tasks_report import choose, domain_report, jailbreak_report, threshold_for_rate
from vsr.training.tasks_soup import soup, soup_from_layer


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    torch = _torch()
    started = time.time()
    torch.backends.cuda.matmul.allow_tf32 = False
    log_lines: list[str] = []

    def log(line: str) -> None:
        line = f"[{time.time() - started:6.1f}s] {line}"
        print(line, flush=True)
        log_lines.append(line)

    encoder = Encoder(args.encoder_dir, args.device, args.dropout)
    domain = domain_examples(
        args.data_dir, args.with_more_packages and args.more_domain, args.with_domain_survey2
    )
    # The jailbreak task's benign sample of subject questions is drawn without the second domain
    # survey's, so adding them changes the domain task only (candidate M8 of the jailbreak card).
    jail = jailbreak_examples(
        args.data_dir,
        domain_examples(args.data_dir, args.with_more_packages and args.more_domain)
        if args.with_domain_survey2
        else domain,
        args.with_packages,
        args.with_more_packages,
        args.with_system_prompts,
        args.with_third_survey,
        args.with_more_sharegpt,
        args.with_fourth_survey,
        args.with_planted,
        args.with_requests_more,
        args.with_fifth_survey,
    )
    if args.limit:
        rng = random.Random(0)
        domain, jail = (
            rng.sample(domain, min(args.limit, len(domain))),
            rng.sample(jail, min(args.limit, len(jail))),
        )
    d_train, d_test = split_by_group(domain, 0.2, salt="domain-test")
    j_rest, j_test = split_by_group(jail, 0.2, salt="jailbreak-test")
    j_train, j_calibration = split_by_group(j_rest, 0.15 / 0.8, salt="jailbreak-calibration")
    # A domain question held out of the domain head is held out of the jailbreak head too.
    held = {e.text for e in d_test}
    j_train = [e for e in j_train if e.text not in held]
    log(
        f"domain train {len(d_train)} test {len(d_test)}; jailbreak train {len(j_train)} "
        f"calibration {len(j_calibration)} test {len(j_test)}"
    )
    data = {"domain": (d_train, tuple(DOMAIN_LABELS)), "jailbreak": (j_train, JAILBREAK_LABELS)}
    # The threshold is set on the real benign prompts of the calibration groups (the subject
    # questions are easy and would hide the hard cases): at most --calibration-rate of them flagged.
    calibration_benign = [e for e in j_calibration if e.label == BENIGN and calibrates(e)]
    calibration_attacks = [e for e in j_calibration if e.label != BENIGN]

    def assess(models: dict[str, TaskModel], name: str, candidate: Candidate) -> dict[str, Any]:
        jb = models["jailbreak"]
        cal = 1.0 - probabilities(jb, "jailbreak", [e.text for e in calibration_benign])[:, 0]
        threshold = threshold_for_rate(cal, args.calibration_rate)
        test_scores = 1.0 - probabilities(jb, "jailbreak", [e.text for e in j_test])[:, 0]
        report = jailbreak_report(test_scores, j_test, threshold)
        dom = domain_report(models["domain"], tuple(DOMAIN_LABELS), d_test)
        cal_attack = (
            1.0 - probabilities(jb, "jailbreak", [e.text for e in calibration_attacks])[:, 0]
        )
        return {
            "name": name,
            "layers": 0 if candidate.from_layer is None else 6 - candidate.from_layer,
            "shippable": candidate.shared,
            "threshold": round(threshold, 6),
            "domain_accuracy": dom["accuracy"],
            "attack_recall": report["attack_recall"],
            "benign_fpr": report["benign_fpr"],
            "calibration_attack_recall": round(float((cal_attack >= threshold).mean()), 4),
            "calibration_attack_recall_at_1pct": round(
                float((cal_attack >= threshold_for_rate(cal, 0.01)).mean()), 4
            ),
            "domain_test": dom,
            "jailbreak_test": report,
        }

    rows = []
    chosen_models: dict[str, TaskModel] | None = None
    names = args.candidate.split(";")
    candidates = CANDIDATES if args.compare else tuple(c for c in CANDIDATES if c.name in names)
    if args.soup:
        candidates = (Candidate(f"soup of {len(args.soup)} runs", soup_from_layer(args.soup)),)
    trained: dict[str, dict[str, TaskModel]] = {}
    for candidate in candidates:
        if args.soup:
            shared = soup(encoder, args.soup, {t: len(labels) for t, (_, labels) in data.items()})
            models = dict.fromkeys(data, shared)
            log(f"{candidate.name}: {', '.join(str(d) for d in args.soup)}")
        else:
            models = train_model(
                encoder,
                candidate,
                data,
                epochs=args.epochs,
                seed=args.seed,
                branch_lr=args.branch_lr,
                log=log,
            )
        row = assess(models, candidate.name, candidate)
        log(
            f"{candidate.name}: domain {row['domain_accuracy']:.4f} "
            f"recall {row['attack_recall']:.4f} fpr {row['benign_fpr']:.4f} "
            f"thr {row['threshold']:.3f}"
        )
        rows.append(row)
        trained[candidate.name] = models
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "tasks.compare.json").write_text(json.dumps(rows, indent=1) + "\n")
    name = choose(rows)
    chosen_models = trained[name]
    model = chosen_models["domain"]
    log(f"chosen: {name}")
    # What ships is the float16 branch: every figure below is of that model.
    model.round_to_f16()
    row = assess(chosen_models, name, next(c for c in candidates if c.name == name))
    threshold = row["threshold"]
    held_sets: dict[str, Any] = {}
    curve_sets: dict[str, tuple[np.ndarray, list[Example]]] = {}
    test_scores = 1.0 - probabilities(model, "jailbreak", [e.text for e in j_test])[:, 0]
    curve_sets["test groups"] = (test_scores, list(j_test))
    for title, file in HELDOUT.items():
        path = args.data_dir / file
        if path.is_file():
            examples = read_heldout(path)
            scores = windowed_attack(
                model, [e.text for e in examples], args.window, args.overlap, args.max_windows
            )
            held_sets[title] = jailbreak_report(scores, examples, threshold)
            curve_sets[title] = (scores, examples)
    domain_written = []
    for file in DOMAIN_HELDOUT:
        path = args.data_dir / file
        if path.is_file():
            examples = read_heldout(path)
            held_sets[f"domain {path.name}"] = domain_report(model, tuple(DOMAIN_LABELS), examples)
            domain_written += [replace(e, label=BENIGN) for e in examples]
    for title, file in (
        ("domain: packages held out whole", DOMAIN_HELDOUT_PACKAGES),
        ("domain: exam packages held out whole, second survey", DOMAIN_HELDOUT_PACKAGES2),
    ):
        path = args.data_dir / file
        if path.is_file():
            examples = read_heldout(path)
            held_sets[title] = domain_report(model, tuple(DOMAIN_LABELS), examples)
            domain_written += [replace(e, label=BENIGN) for e in examples]
    scores = windowed_attack(
        model, [e.text for e in domain_written], args.window, args.overlap, args.max_windows
    )
    held_sets["held-out domain questions as jailbreak input (benign)"] = jailbreak_report(
        scores, domain_written, threshold
    )
    filler = args.data_dir / "pii" / "filler.txt"
    if filler.is_file():
        text = filler.read_text(encoding="utf-8")
        held_sets["long support email data/pii/filler.txt"] = {
            "characters": len(text),
            "score": round(
                float(
                    windowed_attack(model, [text], args.window, args.overlap, args.max_windows)[0]
                ),
                4,
            ),
        }
    d_test_benign = [replace(e, label=BENIGN) for e in d_test]
    scores = windowed_attack(
        model, [e.text for e in d_test_benign], args.window, args.overlap, args.max_windows
    )
    held_sets["test-group subject questions as jailbreak input (benign)"] = jailbreak_report(
        scores, d_test_benign, threshold
    )
    curve = []
    for value in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, round(threshold, 3)):
        point: dict[str, Any] = {"threshold": value}
        for title, (scores, examples) in curve_sets.items():
            report = jailbreak_report(scores, examples, value)
            point[title] = {"recall": report["attack_recall"], "fpr": report["benign_fpr"]}
        curve.append(point)
    files = export(model, args.out, DOMAIN_LABELS, threshold)
    files.append(
        write_manifest(
            args.out,
            model.from_layer if model.branch is not None else None,
            DOMAIN_LABELS,
            threshold,
        )
    )
    fixture = parity_fixture(model, encoder)
    (args.out / "tasks.parity.json").write_text(json.dumps(fixture) + "\n")
    files.append(args.out / "tasks.parity.json")
    metrics = {
        "chosen": name,
        "from_layer": model.from_layer,
        "threshold": threshold,
        "epochs": args.epochs,
        "seed": args.seed,
        **data_flags(args),
        "soup_of": [str(d) for d in args.soup],
        "split": {
            "domain_train": len(d_train),
            "domain_test": len(d_test),
            "jailbreak_train": len(j_train),
            "jailbreak_calibration": len(j_calibration),
            "jailbreak_test": len(j_test),
            "calibration_benign": len(calibration_benign),
        },
        "train_label_counts": {
            "domain": {k: sum(e.label == k for e in d_train) for k in DOMAIN_LABELS},
            "jailbreak": {k: sum(e.label == k for e in j_train) for k in JAILBREAK_LABELS},
        },
        "comparison": [
            {k: v for k, v in r.items() if k not in ("domain_test", "jailbreak_test")} for r in rows
        ],
        "shipped": row,
        "heldout": held_sets,
        "threshold_curve": curve,
        "windows": {"chars": args.window, "overlap": args.overlap, "max": args.max_windows},
        "log": log_lines,
    }
    (args.out / "tasks.metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log(f"wrote {[str(p) for p in files]} in {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
