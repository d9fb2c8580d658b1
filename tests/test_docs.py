"""The front door: a README of a few screens that lists nox's sessions, docs/ built into a site
with no warning (and a broken link failing the build), the license, the dev container."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, measured_in

README = ROOT / "README.md"


def test_the_readme_fits_in_a_few_screens_and_lists_every_session() -> None:
    import nox.registry

    import noxfile  # noqa: F401 - importing registers the sessions

    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    listed = set(re.findall(r"^\| `([a-z-]+)` +\|", text, re.MULTILINE))
    assert listed == set(nox.registry.get())


def test_the_readme_links_to_pages_that_exist() -> None:
    links = re.findall(r"\]\(((?:docs/)?[\w./-]+\.md|LICENSE)\)", README.read_text("utf-8"))
    assert len(links) >= 10
    assert [link for link in links if not (ROOT / link).is_file()] == []


@pytest.mark.slow
def test_the_docs_session_builds_the_site_and_fails_on_a_broken_link(
    tmp_path: Path, child_env: dict[str, str], nox_cmd: list[str], project_copy: Path
) -> None:
    env = measured_in(project_copy, child_env)
    # `--no-venv` runs the tools beside this test venv's Python.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")

    def docs() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*nox_cmd, "--no-venv", "-s", "docs"],
            cwd=project_copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    built = docs()
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stdout + built.stderr
    site = project_copy / "build" / "docs"
    assert "track" in (site / "reference.html").read_text(encoding="utf-8")
    page = project_copy / "docs" / "data.md"
    page.write_text(page.read_text("utf-8") + "\nSee [the old page](gone.md).\n", "utf-8")
    broken = docs()
    output = broken.stdout + broken.stderr
    assert broken.returncode != 0, output
    assert "data.md" in output and "gone.md" in output


def test_the_license_and_the_dev_container() -> None:
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    spec = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text("utf-8"))
    compose_file = ROOT / ".devcontainer" / spec["dockerComposeFile"]
    services = yaml.safe_load(compose_file.read_text(encoding="utf-8"))["services"]
    assert spec["service"] == "dev" and "dev" in services
    assert services["dev"]["volumes"][0].endswith(f":{spec['workspaceFolder']}")
