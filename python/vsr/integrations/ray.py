"""Ray Data: classify or route a dataset with vsr, on a laptop or a cluster, with the same code.

Both classes are callables for ``Dataset.map_batches``. Given as a class, Ray builds one instance
per worker (an actor), so the model is loaded once per worker and reused for every batch::

    import ray
    from vsr.integrations.ray import Classifier

    prompts = ray.data.read_parquet("s3://bucket/prompts/")          # a "text" column
    labelled = prompts.map_batches(
        Classifier,
        fn_constructor_kwargs={"task": "domain"},   # or jailbreak, pii; model=..., device=...
        concurrency=8,                              # workers, each loading the bundle once
        batch_size=256,
        # on GPU nodes: num_gpus=1 and fn_constructor_kwargs={"task": "domain", "device": "cuda:0"}
    )
    labelled.write_parquet("s3://bucket/labelled/")

``Classifier`` adds ``label`` and ``score`` (and ``entities``, JSON text, for pii): the same
predictor and the same values as ``vsr classify``. ``RouterBatch`` routes each text with a config
and adds ``decision``, ``routed_model``, ``category`` and ``blocked`` (what ``vsr route`` decides).
Ray itself is not a dependency of vsr: install ``ray[data]`` where you use this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]


def _texts(batch: Batch, column: str) -> list[str]:
    if column not in batch:
        raise KeyError(f"the batch has no {column!r} column; columns: {sorted(batch)}")
    texts = list(batch[column])
    for index, text in enumerate(texts):
        # A null would be labelled as the text "None": refuse it, as ``vsr classify`` does.
        if not isinstance(text, str):
            raise TypeError(
                f"row {index + 1} of the batch: {column!r} must be a string, "
                f"got {type(text).__name__}"
            )
    return [str(text) for text in texts]  # numpy's str_ to str


class Classifier:
    """One task's shipped (or given) model on every worker; see the module docstring."""

    def __init__(
        self,
        task: str,
        *,
        model: str | None = None,
        device: str = "cpu",
        text_column: str = "text",
        threshold: float | None = None,
        batch_size: int = 32,
    ) -> None:
        from vsr.tasks import TaskError, get_task

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        loader = get_task(task)
        if threshold is not None:
            if task != "jailbreak":
                raise TaskError("threshold applies to the jailbreak task only")
            self.predictor = loader.load_predictor(model, device, threshold=threshold)  # type: ignore[call-arg]
        else:
            self.predictor = loader.load_predictor(model, device)
        self.task = task
        self.text_column = text_column
        self.batch_size = batch_size

    def __call__(self, batch: Batch) -> Batch:
        texts = _texts(batch, self.text_column)
        records: list[dict[str, Any]] = []
        # Model calls of ``batch_size`` texts, as ``vsr classify --batch-size`` makes them.
        for start in range(0, len(texts), self.batch_size):
            predictions = self.predictor.predict(texts[start : start + self.batch_size])
            records += [prediction.to_record() for prediction in predictions]
        out = dict(batch)
        out["label"] = np.array([record["label"] for record in records], dtype=object)
        out["score"] = np.array([record["score"] for record in records], dtype=np.float64)
        if any("entities" in record for record in records):
            entities = [json.dumps(record.get("entities", [])) for record in records]
            out["entities"] = np.array(entities, dtype=object)
        return out


class RouterBatch:
    """A router config on every worker: routes each text as a ``model`` (default auto) request."""

    def __init__(
        self,
        config: str | Path,
        *,
        device: str | None = None,
        text_column: str = "text",
        model: str = "auto",
    ) -> None:
        from vsr.router import Router

        self.router = Router.from_file(config, device=device)
        self.text_column = text_column
        self.model = model

    def __call__(self, batch: Batch) -> Batch:
        results = [
            self.router.route({"model": self.model, "messages": [{"role": "user", "content": t}]})
            for t in _texts(batch, self.text_column)
        ]
        out = dict(batch)
        out["decision"] = np.array([r.decision for r in results], dtype=object)
        out["routed_model"] = np.array([r.served_model for r in results], dtype=object)
        out["category"] = np.array([r.category for r in results], dtype=object)
        blocked = [r.blocked.kind if r.blocked else None for r in results]
        out["blocked"] = np.array(blocked, dtype=object)
        return out
