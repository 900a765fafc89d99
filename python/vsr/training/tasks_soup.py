"""A uniform model soup of several ``vsr train tasks`` runs of one recipe.

Runs that differ only in their seed start from the same MiniLM layers and stay close to them, so
the element-wise mean of their fine-tuned weights is itself a working model (Wortsman et al.,
"Model soups", 2022): one model at the cost of one, whose figures vary less with any one seed's
draw. The runs' shipped files are read (float16 branch, float32 heads), averaged in float32, and
the result goes through the trainer's usual report and export (``finetune --soup``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vsr.training.tasks_model import Encoder, TaskModel, _torch


def soup_from_layer(run_dirs: Sequence[Path]) -> int:
    """The branch's first layer, the same in every run (else they are not one recipe)."""
    layers = {
        json.loads((d / "bundle.json").read_text())["branches"]["tasks"]["from_layer"]
        for d in run_dirs
    }
    if len(layers) != 1:
        raise ValueError(f"runs branch from different layers {sorted(layers)}: not one recipe")
    return int(layers.pop())


def soup(encoder: Encoder, run_dirs: Sequence[Path], tasks: dict[str, int]) -> TaskModel:
    """The mean of the runs' branch and head weights, in a TaskModel serving ``tasks``."""
    from safetensors.torch import load_file

    torch = _torch()
    if len(run_dirs) < 2:
        raise ValueError("a soup needs at least two runs")
    from_layer = soup_from_layer(run_dirs)
    model = TaskModel(encoder, from_layer, tasks)
    assert model.branch is not None
    branches = [load_file(str(d / "tasks.branch.safetensors")) for d in run_dirs]
    heads = {t: [load_file(str(d / f"{t}.safetensors")) for d in run_dirs] for t in tasks}

    def mean(tensors: list[Any]) -> Any:
        return torch.stack([t.float() for t in tensors]).mean(0).to(encoder.device)

    with torch.no_grad():
        for index, layer in enumerate(model.branch):
            prefix = f"encoder.layer.{from_layer + index}."
            layer.load_state_dict(
                {name: mean([b[prefix + name] for b in branches]) for name in layer.state_dict()}
            )
        for task, files in heads.items():
            model.heads[task].weight.copy_(mean([f["layers.weight"] for f in files]))
            model.heads[task].bias.copy_(mean([f["layers.bias"] for f in files]))
    return model
