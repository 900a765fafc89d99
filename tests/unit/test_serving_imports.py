"""The serving path imports and runs without the ``train`` extra (``pip install vsr`` alone).

Each check runs in a fresh interpreter whose import system refuses the extra's packages, as an
environment without them would, and then lists which ``vsr`` tooling modules got imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The ``train`` extra and what fine-tuning adds; none may be needed to serve.
BLOCKED = ("sklearn", "scipy", "faker", "time_machine", "torch", "tokenizers", "safetensors")

BLOCKER = textwrap.dedent(
    f"""
    import sys

    class NoTrainingExtra:
        BLOCKED = {BLOCKED!r}

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.BLOCKED:
                raise ImportError(f"{{name}} is blocked: the train extra is not installed")
            return None

    sys.meta_path.insert(0, NoTrainingExtra())
    """
)


def run_python(body: str) -> subprocess.CompletedProcess[str]:
    code = BLOCKER + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_serving_path_imports_without_the_train_extra() -> None:
    result = run_python(
        """
        import importlib, json

        try:
            import sklearn  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker let scikit-learn through")
        for name in (
            "vsr",
            "vsr.extproc.server",
            "vsr.api.http",
            "vsr.router",
            "vsr.runtime",
            "vsr.commands.classify",
            "vsr.commands.eval",
            "vsr.commands.route",
            "vsr.commands.serve",
            "vsr.tasks.domain",
            "vsr.tasks.jailbreak",
            "vsr.tasks.pii",
        ):
            importlib.import_module(name)
        from vsr.cli import build_parser

        build_parser()  # every command registers, ``train`` included
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert "vsr.router" in loaded and "vsr.tasks.sequence" in loaded
    tooling = [m for m in loaded if m.startswith(("vsr.training", "vsr.setup_tools"))]
    assert tooling == []
    assert [m for m in loaded if m.split(".")[0] in BLOCKED] == []


def test_classify_runs_without_the_train_extra(tmp_path: Path) -> None:
    """``vsr classify`` end to end (a fake predictor stands in for the native core's model)."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "is this contract valid"}\n{"text": "hello"}\n')
    output = tmp_path / "out.jsonl"
    result = run_python(
        f"""
        import numpy as np

        from vsr.cli import build_parser
        from vsr.commands import classify
        from vsr.tasks import domain
        from vsr.tasks.sequence import SequencePredictor

        def law_or_other(texts):
            rows = np.full((len(texts), len(domain.LABELS)), 0.01, dtype=np.float32)
            for row, text in enumerate(texts):
                label = "law" if "contract" in text else "other"
                rows[row, domain.LABELS.index(label)] = 0.9
            return rows

        classify.load_predictor = lambda args: SequencePredictor(law_or_other, domain.LABELS)
        args = build_parser().parse_args(
            ["classify", "--task", "domain", {str(source)!r}, "--output", {str(output)!r}]
        )
        assert args.handler(args) == 0
        assert not [m for m in sys.modules if m.startswith("vsr.training")]
        """
    )
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line)["label"] for line in output.read_text().splitlines()]
    assert labels == ["law", "other"]


def test_train_names_the_extra_when_it_is_missing(tmp_path: Path) -> None:
    result = run_python(
        f"""
        from vsr.cli import main

        sys.exit(main(["train", "jailbreak", "--out", {str(tmp_path / "out")!r}]))
        """
    )
    assert result.returncode == 2
    assert "needs scikit-learn" in result.stderr
    assert "pip install 'vsr[train]'" in result.stderr
    assert not (tmp_path / "out").exists()
