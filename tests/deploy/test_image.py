"""What the Dockerfile copies is enough to install the scaler: build the wheel from exactly those files
(no Docker daemon here) and run `python -m scaler` from it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.support import DEPLOY, REPO


def _copied_sources() -> list[str]:
    """The build stage's COPY sources (destinations are the build dir, as in the Dockerfile)."""
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    build_stage = text.split("\nFROM ")[1]  # the first stage, up to the runtime stage
    sources: list[str] = []
    for line in build_stage.splitlines():
        m = re.fullmatch(r"COPY (?!--from)(.+) \S+", line.strip())
        if m:
            sources.extend(m.group(1).split())
    return sources


def test_the_build_stage_copies_the_package_and_its_metadata() -> None:
    assert _copied_sources() == ["pyproject.toml", "README.md", "scaler", "simulations"]


def test_the_copied_files_build_an_installable_scaler(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in _copied_sources():
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, context / source)
    wheels = tmp_path / "wheels"
    # --no-build-isolation and --no-deps: offline, with the build backend and dependencies of the venv.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            ".",
        ],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("llm_keda_scaler-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    assert "scaler/__main__.py" in names
    assert "scaler/_generated/externalscaler_pb2.py" in names
    assert any(n.startswith("simulations/traces/") for n in names)
    # The image's entrypoint, run from the installed files (PYTHONPATH wins over the editable install).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCALER_")},
        "PYTHONPATH": str(tmp_path / "site"),
    }
    out = subprocess.run(
        [sys.executable, "-c", "import scaler, sys; print(scaler.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip().startswith(str(tmp_path / "site")), out
    result = subprocess.run(
        [sys.executable, "-m", "scaler", "serve", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--tls-client-ca" in result.stdout
