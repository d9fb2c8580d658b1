"""The `data` session and `ensure_data` against real DVC on throw-away repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sessions.data
from sessions.data import DataError, ensure_data, explain, run_action
from sessions.files import remove_tree
from tests.conftest import ROOT, RecordingSession
from tests.dvc_repo import copy_repo, digest_tree, dvc, isolate, write_data


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dvc_templates: dict[str, Path]) -> Path:
    isolate(monkeypatch, tmp_path)
    return copy_repo(dvc_templates["empty"], tmp_path)


@pytest.fixture
def tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dvc_templates: dict[str, Path]
) -> Path:
    """A repo whose data/ is recorded in data.dvc and pushed to the local remote."""
    isolate(monkeypatch, tmp_path)
    return copy_repo(dvc_templates["tracked"], tmp_path)


class Generator:
    """The generator callable that training passes in; counts its calls."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self, path: Path) -> None:
        self.calls += 1
        write_data(path, seed=self.seed)


# --- messages -----------------------------------------------------------------------------

# What DVC 3 prints for each failure (copied from real runs).
REAL_FAILURES = {
    "unreachable": "ERROR: unexpected error - Could not connect to the endpoint URL: "
    '"http://127.0.0.1:9/b/x.dir"',
    "credentials": "ERROR: unexpected error - Forbidden: An error occurred (403) when calling "
    "the HeadObject operation: Forbidden",
    "no credentials": "ERROR: unexpected error - Unable to locate credentials",
    "bucket": "ERROR: unexpected error - The specified bucket does not exist: An error "
    "occurred (NoSuchBucket)",
    "remote lacks the data": "ERROR: failed to pull data from the cloud - Checkout failed for "
    "following targets:\ndata",
    "no remote": "ERROR: failed to push data to the cloud - config file error: no remote "
    "specified. Setup default remote with\n    dvc remote default <remote name>\nor use:\n"
    "    dvc push -r <remote name>\nNo remote provided and no default remote set.",
    "unknown remote": "ERROR: failed to push data to the cloud - config file error: remote "
    "'nonexist' doesn't exist",
}
EXPECTED = {
    "unreachable": "unreachable",
    "credentials": "rejected the credentials",
    "no credentials": "no S3 credentials",
    "bucket": "does not create buckets",
    "remote lacks the data": "does not hold the data",
    "no remote": "no DVC remote is configured",
    "unknown remote": "`dvc remote list`",
}


@pytest.mark.parametrize("case", sorted(REAL_FAILURES))
def test_each_failure_is_one_sentence_that_says_what_to_do(case: str) -> None:
    message = explain("push", REAL_FAILURES[case], ["-r", "s3"])
    assert EXPECTED[case] in message
    assert message.startswith("dvc push failed")
    assert "\n" not in message
    assert message.endswith(".")
    assert message.count(". ") == 0, "one sentence"


def test_an_unknown_failure_quotes_dvc_error_line() -> None:
    message = explain("pull", "noise\nERROR: something new broke\nmore")
    assert "ERROR: something new broke" in message
    assert "-v" in message


# --- the session and its command line -----------------------------------------------------


def test_session_rejects_a_missing_or_unknown_action(tmp_path: Path) -> None:
    for posargs in ([], ["fetch"]):
        session = RecordingSession(tmp_path, posargs=posargs)
        with pytest.raises(RuntimeError, match=r"pull\|push\|status"):
            sessions.data.run(session)  # type: ignore[arg-type]
        assert not session.installs


def test_session_installs_the_data_group_and_passes_posargs(tmp_path: Path) -> None:
    session = RecordingSession(tmp_path, posargs=["push", "-r", "s3"])
    sessions.data.run(session)  # type: ignore[arg-type]
    assert any("dvc[s3]>=3.60" in args for args in session.installs)
    assert session.runs == [("python", "-m", "sessions.data", "push", "-r", "s3")]


def test_cli_usage_and_unknown_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert sessions.data.main([]) == 2
    assert sessions.data.main(["fetch"]) == 1
    assert "unknown action 'fetch'" in capsys.readouterr().err


def test_cli_reports_a_failure_in_one_line(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sessions.data", "push", "-r", "nonexist"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: dvc push failed: that DVC remote is not configured; "
        "`dvc remote list` shows the ones that are."
    ]


# --- push, pull, status with the local remote ---------------------------------------------


def test_push_then_pull_restores_identical_bytes(tracked: Path) -> None:
    before = digest_tree(tracked / "data")
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    run_action("pull", root=tracked)
    assert digest_tree(tracked / "data") == before


def test_status_reports_workspace_and_remote(
    tracked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_action("status", root=tracked)
    out = capsys.readouterr().out
    assert "Data and pipelines are up to date" in out
    assert "Cache and remote 'local' are in sync" in out
    (tracked / "data" / "part-000.bin").write_bytes(b"edited")
    run_action("status", root=tracked)
    assert "modified" in capsys.readouterr().out


def test_pull_from_a_remote_without_the_data_fails_clearly(tracked: Path) -> None:
    dvc(tracked, "remote", "add", "empty", str(tracked.parent / "empty-store"))
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    with pytest.raises(DataError, match="does not hold the data"):
        run_action("pull", ["-r", "empty"], root=tracked)


# --- ensure_data: what training calls first -----------------------------------------------


def test_untracked_data_is_generated_with_a_notice(repo: Path) -> None:
    notices: list[str] = []
    generate = Generator()
    assert ensure_data(generate, root=repo, notice=notices.append) == "untracked"
    assert generate.calls == 1
    assert (repo / "data" / "part-000.bin").is_file()
    assert "not versioned yet" in notices[0]
    # Existing untracked data is used as it is, and said so.
    assert ensure_data(generate, root=repo, notice=notices.append) == "untracked"
    assert generate.calls == 1
    assert "no data.dvc records" in notices[1]


def test_current_data_is_used_without_work(tracked: Path) -> None:
    generate = Generator()
    assert ensure_data(generate, root=tracked) == "current"
    assert generate.calls == 0


def test_deleted_data_comes_back_from_the_cache(tracked: Path) -> None:
    before = digest_tree(tracked / "data")
    remove_tree(tracked / "data")
    generate = Generator()
    assert ensure_data(generate, root=tracked, notice=lambda _: None) == "restored"
    assert digest_tree(tracked / "data") == before
    assert generate.calls == 0


def test_missing_data_and_cache_are_pulled_from_the_remote(tracked: Path) -> None:
    before = digest_tree(tracked / "data")
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    notices: list[str] = []
    generate = Generator(seed=99)
    assert ensure_data(generate, root=tracked, notice=notices.append) == "pulled"
    assert digest_tree(tracked / "data") == before
    assert generate.calls == 0
    assert "Pulled data/" in notices[-1]


def test_no_reachable_remote_regenerates_with_a_notice(tracked: Path) -> None:
    dvc(tracked, "remote", "modify", "local", "url", str(tracked.parent / "gone"))
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    notices: list[str] = []
    generate = Generator(seed=0)
    assert ensure_data(generate, root=tracked, notice=notices.append) == "regenerated"
    assert generate.calls == 1
    assert "regenerating" in notices[0]
    assert ".)" not in notices[0], "one sentence, not a sentence inside another"
    # The same seed gives the recorded bytes, so no mismatch is reported.
    assert len(notices) == 1
    assert sessions.data.workspace_state(tracked) == "current"


def test_regenerated_data_that_differ_from_the_record_are_announced(tracked: Path) -> None:
    dvc(tracked, "remote", "modify", "local", "url", str(tracked.parent / "gone"))
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    notices: list[str] = []
    assert ensure_data(Generator(seed=1), root=tracked, notice=notices.append) == "regenerated"
    recorded = sessions.data.recorded_hash(tracked / "data.dvc")
    assert recorded and recorded.endswith(".dir")
    assert any("differs from the version data.dvc records" in n and recorded in n for n in notices)


def test_modified_data_stop_training_unless_allowed(tracked: Path) -> None:
    (tracked / "data" / "part-000.bin").write_bytes(b"edited")
    generate = Generator()
    with pytest.raises(DataError, match=r"differs from the version data\.dvc records"):
        ensure_data(generate, root=tracked)
    assert (tracked / "data" / "part-000.bin").read_bytes() == b"edited", "nothing overwritten"
    notices: list[str] = []
    assert (
        ensure_data(generate, root=tracked, allow_modified=True, notice=notices.append)
        == "modified"
    )
    assert notices and "training on modified data" in notices[0]
    assert generate.calls == 0


# --- the repository's own DVC files -------------------------------------------------------


def test_committed_config_has_a_local_default_remote_outside_the_repo_and_no_secrets() -> None:
    config = (ROOT / ".dvc" / "config").read_text(encoding="utf-8")
    assert "remote = local" in config
    url = next(line.split("=", 1)[1].strip() for line in config.splitlines() if "url =" in line)
    location = (ROOT / ".dvc" / url).resolve()
    assert ROOT not in location.parents
    for secret in ("access_key", "secret", "password", "token", "endpointurl"):
        assert secret not in config.lower()
    ignored = (ROOT / ".dvc" / ".gitignore").read_text(encoding="utf-8")
    assert "/config.local" in ignored


@pytest.mark.slow
def test_dvc_yaml_defines_a_train_stage_per_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dvc_templates: dict[str, Path]
) -> None:
    isolate(monkeypatch, tmp_path)
    copy = copy_repo(dvc_templates["empty"], tmp_path)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, copy / name)
    listed = dvc(copy, "stage", "list")
    import yaml

    models = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["models"]
    for name, model in models.items():
        assert f"train@{name}" in listed
        assert f"models/{name}-{model['activation']}.pt" in listed


def test_data_session_is_listed_but_not_a_ci_gate() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-k", "True"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    import json

    sessions_by_name = {entry["name"]: entry for entry in json.loads(listed)}
    assert "pull|push|status" in sessions_by_name["data"]["description"]
    assert "ci" not in sessions_by_name["data"]["tags"]
