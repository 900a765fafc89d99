"""vsr used as a library prints nothing unless the application configures logging; the CLI keeps
its structured logs. Each case runs in a fresh interpreter, as a user's program would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "fixtures" / "models"

# A policy whose signals run real (tiny, random) encoders: an embedding model and a classifier.
POLICY = f"""
default_model: general
models: [{{name: general}}, {{name: math}}]
signals:
  - {{type: keyword, name: sums, keywords: ["2+2"]}}
  - {{type: domain, name: law, threshold: 1.0, model: "{MODELS / "bert-seq"}"}}
  - type: embedding
    name: hello
    candidates: [hello there]
    model: "{MODELS / "bert-embedder"}"
decisions:
  - {{name: math, rules: {{type: keyword, name: sums}}, modelRefs: [{{model: math}}]}}
  - name: legal
    rules:
      operator: OR
      conditions: [{{type: domain, name: law}}, {{type: embedding, name: hello}}]
    modelRefs: [{{model: general}}]
"""

PROGRAM = """
import vsr
from vsr.config import parse_config_text

embedder = vsr.Embedder.load({embedder!r})
embedder.embed(["How do I reset my password?"])
with vsr.Router(parse_config_text({policy!r})) as router:
    result = router.route({{"model": "auto", "messages": [{{"role": "user", "content": "2+2?"}}]}})
print(result.model)
"""


def run_python(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def program(prelude: str = "") -> str:
    body = PROGRAM.format(embedder=str(MODELS / "bert-embedder"), policy=POLICY)
    return textwrap.dedent(prelude) + body


def test_library_calls_print_nothing_by_default() -> None:
    done = run_python(program())
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("math\n", "")


def test_library_logs_are_standard_logging_records_when_configured() -> None:
    prelude = """
    import logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s|%(message)s")
    """
    done = run_python(program(prelude))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "math\n"  # logs never go to stdout
    lines = done.stderr.splitlines()
    routed = [line for line in lines if line.startswith("vsr.routing.engine|route_selected")]
    assert len(routed) == 1 and "decision=math" in routed[0] and "model=math" in routed[0]
    assert any(line.startswith("vsr.inference.pool|encoder_run") for line in lines)
    assert any(line.startswith("vsr.inference.registry|model_loading") for line in lines)


def test_warning_level_application_sees_no_debug_lines() -> None:
    prelude = """
    import logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    """
    done = run_python(program(prelude))
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("math\n", "")


def test_cli_keeps_its_structured_logs(tmp_path: Path) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(POLICY)
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps({"model": "auto", "messages": [{"role": "user", "content": "2+2"}]})
    )
    command = [sys.executable, "-m", "vsr.cli", "route", "--config", str(config)]
    done = subprocess.run(
        [*command, "--request", str(request), "--log-level", "debug"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model"] == "math"  # stdout: the result only
    assert "route_selected" in done.stderr and "[debug" in done.stderr


@pytest.mark.parametrize("configured_first", [True, False])
def test_an_application_structlog_configuration_wins(configured_first: bool) -> None:
    configure = """
    import structlog, sys
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    """
    source = (
        textwrap.dedent(configure) + "import vsr\n"
        if configured_first
        else "import vsr\n" + textwrap.dedent(configure)
    )
    source += "import structlog\nstructlog.get_logger('vsr.test').info('app_event', n=1)\n"
    done = run_python(source)
    assert done.returncode == 0, done.stderr
    assert "app_event" in done.stderr and done.stdout == ""
