"""DVC against a real S3-compatible server (SeaweedFS) started on loopback by the tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions.data import DataError, run_action
from sessions.files import remove_tree
from tests.dvc_repo import copy_repo, digest_tree, dvc, isolate, write_data
from tests.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    s3 = S3Server(tmp_path_factory.mktemp("s3") / "weed").start()
    yield s3
    s3.stop()


def s3_repo(
    tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    template: Path,
    endpoint: str | None,
    bucket: str = BUCKET,
) -> Path:
    """A tracked repo whose default remote is a fresh prefix of the bucket, configured in the
    untracked .dvc/config.local the way the README tells a team to."""
    isolate(monkeypatch, tmp)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    repo = copy_repo(template, tmp)
    config = f"[core]\n    remote = s3\n['remote \"s3\"']\n    url = s3://{bucket}/{tmp.name}\n"
    if endpoint:
        config += f"    endpointurl = {endpoint}\n"
    (repo / ".dvc" / "config.local").write_text(config, encoding="utf-8")
    return repo


def snapshot(repo: Path) -> dict[str, dict[str, str]]:
    return {"data": digest_tree(repo / "data"), "cache": digest_tree(repo / ".dvc" / "cache")}


def test_push_delete_pull_gives_identical_bytes(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    repo = s3_repo(tmp_path, monkeypatch, dvc_templates["tracked"], server.endpoint)
    before = digest_tree(repo / "data")
    run_action("push", root=repo)
    remove_tree(repo / "data")
    remove_tree(repo / ".dvc" / "cache")
    run_action("pull", root=repo)
    assert digest_tree(repo / "data") == before
    assert "s3" in (repo / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert "endpointurl" not in (repo / ".dvc" / "config").read_text(encoding="utf-8")


def test_endpoint_from_the_environment_alone(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    repo = s3_repo(tmp_path, monkeypatch, dvc_templates["tracked"], None)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    run_action("push", root=repo)
    assert server.object_count() > 0


def test_wrong_keys_fail_clearly_and_keep_everything(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    repo = s3_repo(tmp_path, monkeypatch, dvc_templates["tracked"], server.endpoint)
    before = snapshot(repo)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(DataError, match="rejected the credentials; set AWS_ACCESS_KEY_ID") as err:
        run_action("push", root=repo)
    assert "not-the-secret" not in str(err.value)
    assert snapshot(repo) == before


def test_missing_bucket_fails_clearly(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    repo = s3_repo(
        tmp_path, monkeypatch, dvc_templates["tracked"], server.endpoint, bucket="no-such-bucket"
    )
    before = snapshot(repo)
    with pytest.raises(DataError, match="does not exist and DVC does not create buckets"):
        run_action("push", root=repo)
    assert snapshot(repo) == before


def test_stopped_server_fails_clearly_loses_nothing_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dvc_templates: dict[str, Path]
) -> None:
    own = S3Server(tmp_path.parent / f"{tmp_path.name}-weed").start()
    try:
        repo = s3_repo(tmp_path, monkeypatch, dvc_templates["tracked"], own.endpoint)
        before = snapshot(repo)
        own.stop()
        with pytest.raises(DataError, match="is unreachable; start it"):
            run_action("push", root=repo)
        assert snapshot(repo) == before
        own.start()
        run_action("push", root=repo)
        remove_tree(repo / "data")
        remove_tree(repo / ".dvc" / "cache")
        run_action("pull", root=repo)
        assert snapshot(repo) == before
    finally:
        own.stop()


def test_interrupted_push_is_completed_by_a_rerun(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    repo = s3_repo(tmp_path, monkeypatch, dvc_templates["tracked"], server.endpoint)
    # Enough small files that a one-at-a-time push lasts seconds, even on a fast machine.
    files = 1000
    write_data(repo / "data", files=files, size=2 * 1024, seed=5)
    expected = files + 2  # the template's own file and the .dir listing come too
    dvc(repo, "add", "-q", "data")
    before = snapshot(repo)
    start = server.object_count()
    # One upload at a time, killed as soon as the first objects have landed.
    push = subprocess.Popen(
        [sys.executable, "-m", "dvc", "push", "-j", "1"],
        cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while server.object_count() < start + 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    push.kill()
    push.wait()
    landed = server.object_count() - start
    assert 0 < landed < expected, f"the push was not interrupted midway ({landed} objects)"
    assert snapshot(repo) == before
    run_action("push", root=repo)
    assert server.object_count() - start == expected
    remove_tree(repo / "data")
    remove_tree(repo / ".dvc" / "cache")
    run_action("pull", root=repo)
    assert digest_tree(repo / "data") == before["data"]
