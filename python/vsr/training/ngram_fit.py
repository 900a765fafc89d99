"""Fitting a character n-gram expert (``vsr.ngrams.NgramModel``) with scikit-learn.

The n-grams come from ``vsr.ngrams.char_ngrams``, the function the serving path runs, handed to
scikit-learn's ``TfidfVectorizer`` as its analyzer; the fitted IDF and logistic-regression
coefficients are copied into an ``NgramModel``, which recomputes the same logits on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from vsr.ngrams import NgramModel, char_ngrams
from vsr.training.heads import encode_labels, softmax_rows


@dataclass(frozen=True)
class NgramSpec:
    """How a task's n-gram expert is built and how much it weighs against the encoder head."""

    sizes: tuple[int, int] = (3, 5)
    # About what the encoder's 256 tokens cover, so both experts read the same part of a prompt.
    max_chars: int = 1500
    min_count: int = 3  # n-grams in fewer training texts are dropped (noise, and file size)
    regularization: float = 1.0  # scikit-learn's C
    mix: float = 0.5  # the encoder head's share of the log-probabilities

    def describe(self) -> str:
        return (
            f"character {self.sizes[0]}-{self.sizes[1]}-grams of each whitespace-separated word "
            f"in the first {self.max_chars} characters (lower-cased), sublinear TF-IDF, "
            f"L2-normalised; multinomial logistic regression (C={self.regularization}, balanced "
            f"class weights); n-grams seen in fewer than {self.min_count} training texts dropped"
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
    analyzer = partial(char_ngrams, sizes=spec.sizes, max_chars=spec.max_chars)
    vectorizer = TfidfVectorizer(analyzer=analyzer, min_df=spec.min_count, sublinear_tf=True)
    matrix = vectorizer.fit_transform(list(texts))
    model = LogisticRegression(
        C=spec.regularization, class_weight="balanced", max_iter=5000, random_state=seed
    )
    model.fit(matrix, targets, sample_weight=sample_weight)
    weight, bias = softmax_rows(model, len(order))
    return NgramModel(
        labels=tuple(order),
        sizes=spec.sizes,
        max_chars=spec.max_chars,
        vocabulary=tuple(str(gram) for gram in vectorizer.get_feature_names_out()),
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        weight=weight,
        bias=bias,
    )
