"""``vsr route`` and ``vsr validate-config`` end to end, on a text-only policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vsr.cli import main

POLICY = """
default_model: general
models: [{name: general}, {name: mathematician}]
signals:
  - {type: keyword, name: arithmetic, patterns: ['\\d\\s*[-+*/]\\s*\\(?\\d']}
decisions:
  - name: math
    rules: {type: keyword, name: arithmetic}
    modelRefs: [{model: mathematician}]
"""


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def test_route_one_request(
    policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = write_json(
        tmp_path / "req.json",
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "What is 2+2 * (5-1)?"}],
            "max_tokens": 64,
        },
    )
    assert main(["route", "--config", str(policy), "--request", str(request)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["decision"] == "math" and printed["model"] == "mathematician"
    assert printed["blocked"] is None and printed["reasoning"]["enabled"] is False
    assert printed["headers"]["x-selected-model"] == "mathematician"
    assert printed["headers"]["x-vsr-selected-decision"] == "math"
    assert printed["body"]["model"] == "mathematician" and printed["body"]["max_tokens"] == 64
    assert "category" in printed and "signals" not in printed


def test_route_batch_with_a_bad_line(policy: Path, tmp_path: Path) -> None:
    requests = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"model": "auto", "messages": [{"role": "user", "content": f"{i} + {i}"}]})
        for i in range(60)
    ]
    lines.insert(3, "not json")
    requests.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "route",
            "--config",
            str(policy),
            "--input",
            str(requests),
            "--output",
            str(out),
            "--signals",
        ]
    )
    assert code == 1  # one line failed, and says so
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 61
    assert records[3]["line"] == 4 and "error" in records[3]
    assert {r["model"] for r in records if "model" in r} == {"mathematician"}
    assert records[0]["signals"][0]["name"] == "arithmetic"


def test_route_needs_a_valid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("name: mathematician}]\n", "name: mathematican}]\n"), "utf-8")
    request = write_json(tmp_path / "req.json", {"messages": []})
    assert main(["route", "--config", str(bad), "--request", str(request)]) == 1
    assert (
        "decisions[0].modelRefs[0].model: unknown model 'mathematician'" in capsys.readouterr().err
    )


def test_validate_config(policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config", str(policy)]) == 0
    assert "valid" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("default_model: general", "default_model: nobody"), "utf-8")
    assert main(["validate-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "default_model: unknown model 'nobody'; allowed: 'general', 'mathematician'" in err
