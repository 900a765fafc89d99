"""The shipped bundle's share of flagged windows among the calibration split's benign windows,
built exactly as ``vsr train tasks`` builds them (M6's data flags, plus ``--with-fifth-survey``
when asked): the matched calibration rate of the tenth round (MODEL_CARD_jailbreak.md).

    PYTHONPATH=python .venv/bin/python scripts/calibration_share.py [--fifth]

Reads the calibration windows only (no evaluation set); ~5 minutes on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vsr.models import EncoderBundle
from vsr.training.dataset import split_by_group
from vsr.training.tasks_recipe import BENIGN, calibrates, domain_examples, jailbreak_examples


def main() -> int:
    fifth = "--fifth" in sys.argv[1:]
    data = Path("data")
    domain = domain_examples(data, False, False)
    # M6's flags: packages, more packages, system prompts, third survey, more ShareGPT, fourth.
    jail = jailbreak_examples(data, domain, True, True, True, True, True, True, fifth=fifth)
    rest, _test = split_by_group(jail, 0.2, salt="jailbreak-test")
    _train, calibration = split_by_group(rest, 0.15 / 0.8, salt="jailbreak-calibration")
    benign = [e.text for e in calibration if e.label == BENIGN and calibrates(e)]
    print(f"calibration windows {len(calibration)}, benign calibrating {len(benign)}", flush=True)
    bundle = EncoderBundle.load("python/vsr/default_models")
    order = sorted(range(len(benign)), key=lambda i: len(benign[i]))
    scores = np.zeros(len(benign), dtype=np.float32)
    for start in range(0, len(order), 64):
        rows = order[start : start + 64]
        # The neural head alone, as training calibrates it (no n-gram expert mixed in).
        probabilities = bundle._encoder.run([benign[i] for i in rows], ["jailbreak"])["jailbreak"]
        scores[rows] = 1.0 - np.asarray(probabilities)[:, 0]
    for threshold in (0.5, 0.6, 0.7):
        flagged = int((scores >= threshold).sum())
        print(f"threshold {threshold}: {flagged} of {len(scores)} = {flagged / len(scores):.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
