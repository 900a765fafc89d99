"""Choosing a decision threshold on calibration data (training only).

The metrics ``vsr eval`` prints live with the serving tasks (``vsr.tasks.metrics``).
"""

from __future__ import annotations

import numpy as np


def threshold_for_false_positive_rate(negative_scores: np.ndarray, max_rate: float) -> float:
    """The lowest threshold t such that at most ``max_rate`` of negatives score >= t.

    Scores at or above the threshold are flagged. Returns a value just above the k-th highest
    negative score, where k is the number of false positives allowed.
    """
    if not 0.0 <= max_rate < 1.0:
        raise ValueError(f"max_rate must be in [0, 1), got {max_rate}")
    if negative_scores.size == 0:
        raise ValueError("no negative scores to set a threshold on")
    ordered = np.sort(negative_scores.astype(np.float64))[::-1]
    allowed = int(np.floor(max_rate * ordered.size))
    # Flagging requires score >= t, so t must exceed the (allowed+1)-th highest negative score.
    return float(np.nextafter(ordered[allowed], np.inf))
