"""Fitting an n-gram expert (``vsr.ngrams.NgramModel``) with scikit-learn.

The n-grams come from ``vsr.ngrams.Analyzer``, the function the serving path runs, handed to
scikit-learn's ``TfidfVectorizer`` as its analyzer; the fitted IDF and logistic-regression
coefficients are copied into an ``NgramModel``, which recomputes the same logits on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vsr.ngrams import Analyzer, NgramModel
from vsr.training.heads import encode_labels, softmax_rows


@dataclass(frozen=True)
class NgramSpec:
    """How a task's n-gram expert is built and how much it weighs against the encoder head."""

    analyzer: Analyzer = field(default_factory=Analyzer)  # what a text is cut into
    min_count: int = 3  # n-grams in fewer training texts are dropped (noise, and file size)
    regularization: float = 4.0  # scikit-learn's C
    mix: float = 0.5  # the encoder head's share of the log-probabilities

    def describe(self) -> str:
        return (
            f"{self.analyzer.describe()}, sublinear TF-IDF, L2-normalised; multinomial logistic "
            f"regression (C={self.regularization:g}, balanced class weights); n-grams seen in "
            f"fewer than {self.min_count} training texts dropped"
        )


def fit_ngram_model(
    texts: Sequence[str],
    labels: Sequence[str],
    order: Sequence[str],
    spec: NgramSpec,
    *,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
) -> NgramModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    targets = encode_labels(labels, order)
    vectorizer = TfidfVectorizer(analyzer=spec.analyzer, min_df=spec.min_count, sublinear_tf=True)
    matrix = vectorizer.fit_transform(list(texts))
    model = LogisticRegression(
        C=spec.regularization, class_weight="balanced", max_iter=5000, random_state=seed
    )
    model.fit(matrix, targets, sample_weight=sample_weight)
    weight, bias = softmax_rows(model, len(order))
    return NgramModel(
        labels=tuple(order),
        analyzer=spec.analyzer,
        vocabulary=tuple(str(gram) for gram in vectorizer.get_feature_names_out()),
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        weight=weight,
        bias=bias,
    )
