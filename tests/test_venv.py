"""Venvs: the backend choice for torch, group expansion, and the install stamp."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sessions import venv
from sessions.project import LOCK
from tests.conftest import RecordingSession


def test_torch_sessions_use_pip_unless_uv_knows_where_cpu_torch_is() -> None:
    assert venv.torch_venv_backend({}) == "virtualenv"
    assert venv.torch_venv_backend({"UV_FIND_LINKS": ""}) == "virtualenv"
    assert venv.torch_venv_backend({"UV_FIND_LINKS": "/wheels"}) == "uv|virtualenv"
    assert venv.torch_venv_backend({"UV_TORCH_BACKEND": "cpu"}) == "uv|virtualenv"


def test_include_groups_are_expanded() -> None:
    test_group = venv.group_requirements("test")
    assert any(req.startswith("pytest-cov") for req in test_group)
    assert "nox>=2026.10.20" in test_group  # from the included runner group
    assert len(test_group) == len(set(test_group)), "each requirement once"


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line):
            pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def test_lock_pins_every_group_requirement_exactly() -> None:
    pins = lock_pins()
    from sessions.lock import all_groups

    for requirement in [*venv.group_requirements(*all_groups()), *venv.project_requirements()]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement)[0]).lower()
        assert name in pins, f"{requirement} is not in the lock: run `nox -s lock`"
    assert pins["torch"] == "2.13.0"


def test_digest_changes_with_requirements_and_lock(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("a==1\n", encoding="utf-8")
    first = venv.install_digest(["a"], lock)
    assert venv.install_digest(["a"], lock) == first
    assert venv.install_digest(["a", "b"], lock) != first
    lock.write_text("a==2\n", encoding="utf-8")
    assert venv.install_digest(["a"], lock) != first


def test_install_runs_once_then_trusts_the_stamp(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path)
    venv.install_groups(session, "security")  # type: ignore[arg-type]
    venv.install_groups(session, "security")  # type: ignore[arg-type]
    assert len(session.installs) == 1
    args = session.installs[0]
    assert args[:2] == ("--constraint", str(LOCK))
    assert any(arg.startswith("bandit") for arg in args)
    venv.install_groups(session, "summary")  # type: ignore[arg-type]
    assert len(session.installs) == 2


def test_no_venv_installs_nothing(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, venv_backend="none")
    venv.install_groups(session, "test")  # type: ignore[arg-type]
    assert session.installs == []


def test_missing_lock_fails_with_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(venv, "LOCK", tmp_path / "absent.txt")
    with pytest.raises(RuntimeError, match=r"nox -s lock"):
        venv.install_groups(RecordingSession(tmp_path), "test")  # type: ignore[arg-type]


def test_lock_command_resolves_every_group_universally() -> None:
    from sessions.lock import all_groups, compile_command

    command = compile_command("--upgrade")
    assert command[:3] == ["uv", "pip", "compile"]
    assert "--universal" in command and command[-1] == "--upgrade"
    for group in all_groups():
        assert f"pyproject.toml:{group}" in command
