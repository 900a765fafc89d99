"""Reading the two benchmark packages that the domain and jailbreak builders both take text from.

- **BIG-bench** (PyPI ``bigbench`` 1.0.0 sdist, Apache-2.0): a task's ``task.json``, read out of
  the tarball (``bigbench_task``).
- **OpenAI evals** (PyPI ``evals`` 3.0.1 wheel, MIT): the JSONL records of a
  ``evals/registry/data`` directory (``evals_records``). The directories kept for outside
  evaluation (``RESERVED_EVALS``) are refused here, so no builder can open them by mistake.

Nothing is installed or imported: the files are read out of the archives.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Directories of evals/registry/data kept for outside evaluation: never read.
RESERVED_EVALS = frozenset(
    {
        "sandbagging", "fcc_amateur_extra", "beam_analysis", "cissp-study-questions",
        "test_comp_sci", "automata-and-complexity", "us_tort_law", "utah_real_estate", "medmcqa",
        "jee-math", "aime_evaluation", "accounting_audit", "emotional-intelligence",
        "ordered-history-events", "ph_calculation", "mendelian_inheritance",
        "dna_melting_calculation", "moral_exceptQA", "prompt-injection",
        "override-system-instruction", "security_guide",
    }
)  # fmt: skip


def bigbench_task(archive: tarfile.TarFile, task: str) -> dict[str, Any]:
    """The ``task.json`` of a BIG-bench task (``task`` is its path under benchmark_tasks)."""
    name = f"bigbench-1.0.0/bigbench/benchmark_tasks/{task}/task.json"
    handle = archive.extractfile(name)
    assert handle is not None, name
    data: dict[str, Any] = json.load(io.TextIOWrapper(handle, encoding="utf-8"))
    return data


def evals_directories(wheel: Path) -> list[str]:
    """The names of every ``evals/registry/data`` directory in the wheel, reserved ones too."""
    with zipfile.ZipFile(wheel) as archive:
        return sorted(
            {n.split("/")[3] for n in archive.namelist() if n.startswith("evals/registry/data/")}
        )


def evals_records(wheel: Path, directory: str) -> Iterator[dict[str, object]]:
    if directory in RESERVED_EVALS:
        raise ValueError(f"evals/{directory} is reserved for outside evaluation")
    with zipfile.ZipFile(wheel) as archive:
        prefix = f"evals/registry/data/{directory}/"
        for name in sorted(archive.namelist()):
            if name.startswith(prefix) and name.endswith(".jsonl"):
                for line in archive.read(name).decode("utf-8").splitlines():
                    if line.strip():
                        yield json.loads(line)
