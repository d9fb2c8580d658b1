"""DVC against a real S3-compatible server (SeaweedFS) started on loopback by the tests."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from sessions.data.session import DataError, run_action
from sessions.files import remove_tree
from tests.support.cutting_proxy import CuttingProxy, Mode
from tests.support.data_cli import PRINTED, data_env, fresh_copy, nox_data, start_push, wait_until
from tests.support.dvc_repo import copy_repo, digest_tree, dvc, isolate, write_data
from tests.support.platforms import skip_on
from tests.support.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

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
        with pytest.raises(DataError) as error:
            run_action("push", root=repo)
        assert (
            f"the remote 's3' (s3://{BUCKET}/{tmp_path.name}) is unreachable; start its server"
            in str(error.value)
        )
        assert "interrupted" not in str(error.value), "it never started"
        assert snapshot(repo) == before
        own.start()
        (printed,) = PRINTED.findall(str(error.value))
        assert printed == "nox -s data -- push"
        run_printed_action(printed, repo)
        remove_tree(repo / "data")
        remove_tree(repo / ".dvc" / "cache")
        run_action("pull", root=repo)
        assert snapshot(repo) == before
    finally:
        own.stop()


FILES, SIZE = 8, 2**20
# A push of one file at a time (-j 1) is cut after three and a half of them went through.
CUT_AFTER = 3 * SIZE + SIZE // 2


@dataclass
class CutPush:
    proxy: CuttingProxy
    repo: Path
    expected: int  # objects in the remote once the push is complete
    before: dict[str, dict[str, str]]
    push: subprocess.Popen[str]


@contextmanager
def cut_push(
    mode: Mode, server: S3Server, tmp: Path, monkeypatch: pytest.MonkeyPatch, template: Path
) -> Iterator[CutPush]:
    """A push of 1 MiB files, one at a time, through a proxy that cuts it after CUT_AFTER
    bytes: cut by bytes, so how fast the machine is does not matter."""
    proxy = CuttingProxy(server.endpoint, CUT_AFTER, mode).start()
    try:
        repo = s3_repo(tmp, monkeypatch, template, proxy.endpoint)
        write_data(repo / "data", files=FILES, size=SIZE, seed=5)
        dvc(repo, "add", "-q", "data")
        before = snapshot(repo)
        push = start_push(repo, dict(os.environ), "-j", "1")
        # The template's own file and the .dir listing go to the remote too.
        yield CutPush(proxy, repo, FILES + 2, before, push)
    finally:
        proxy.close()


@skip_on("win32", reason="kills a POSIX process group")
def test_a_killed_push_is_reported_as_interrupted_and_the_printed_rerun_completes(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    with cut_push("stall", server, tmp_path, monkeypatch, dvc_templates["tracked"]) as cut:
        repo, push = cut.repo, cut.push
        wait_until(lambda: cut.proxy.cut.is_set() or push.poll() is not None)
        assert push.poll() is None, "the push ended before it was cut"
        os.killpg(push.pid, signal.SIGKILL)  # the terminal closed, the machine went down
        push.wait()
        landed = server.object_count(prefix=tmp_path.name)
        assert 3 <= landed < cut.expected, f"the push was not killed midway ({landed} objects)"
        assert snapshot(repo) == cut.before
        cut.proxy.reopen()
        remote = f"the remote 's3' (s3://{BUCKET}/{tmp_path.name})"
        # The next status and the next push say what happened.
        status = capture(lambda: run_action("status", root=repo))
        assert (
            f"The last push to {remote} was interrupted before it finished: rerun the push with "
            "`nox -s data -- push`." in status
        )
        (printed,) = PRINTED.findall(status.split("The last push")[1])
        pushed = capture(lambda: run_printed_action(printed, repo))
        assert f"The last push to {remote} was interrupted; this push completes it." in pushed
        assert f"T{remote[1:]} now holds every output" in pushed
        assert server.object_count(prefix=tmp_path.name) == cut.expected
        remove_tree(repo / "data")
        remove_tree(repo / ".dvc" / "cache")
        run_action("pull", root=repo)
        assert digest_tree(repo / "data") == cut.before["data"]


def test_a_connection_dropped_midway_is_reported_as_an_interrupted_push(
    server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dvc_templates: dict[str, Path],
) -> None:
    with cut_push("drop", server, tmp_path, monkeypatch, dvc_templates["tracked"]) as cut:
        _, stderr = cut.push.communicate(timeout=300)
        assert cut.proxy.cut.is_set(), "the push ended before the connection dropped"
        landed = server.object_count(prefix=tmp_path.name)
        assert 3 <= landed < cut.expected, f"the connection did not drop midway ({landed})"
        assert cut.push.returncode == 1
        sentence = stderr.strip().splitlines()[-1]
        assert sentence == (
            f"error: the push to the remote 's3' (s3://{BUCKET}/{tmp_path.name}) was interrupted "
            "(the connection to the remote dropped) before it finished, and nothing in your "
            "workspace or cache was lost: rerun the push with `nox -s data -- push -j 1`."
        )
        assert snapshot(cut.repo) == cut.before
        cut.proxy.reopen()
        (printed,) = PRINTED.findall(sentence)
        run_printed_action(printed, cut.repo)
        assert server.object_count(prefix=tmp_path.name) == cut.expected


def test_weights_recorded_but_nowhere_fail_the_push_and_not_the_pull(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project itself, freshly copied, whose dvc.lock records weights no one pushed."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    project = fresh_copy(tmp_path)
    env = {
        **data_env(tmp_path),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    url = f"s3://{BUCKET}/{tmp_path.name}"
    (project / ".dvc" / "config.local").write_text(
        f"[core]\n    remote = s3\n['remote \"s3\"']\n    url = {url}\n"
        f"    endpointurl = {server.endpoint}\n",
        encoding="utf-8",
    )
    remote = f"the remote 's3' ({url})"
    assert nox_data(project, env, "ensure").returncode == 0
    data = digest_tree(project / "data")

    push = nox_data(project, env, "push")
    assert push.returncode == 1, push.output
    assert f"Pushed 3 file(s) to {remote}; it now holds data/." in push.output
    assert (
        "models/sigmoid_deep-sigmoid.pt is recorded in dvc.lock by stage train@sigmoid_deep but "
        f"neither in your cache nor on {remote}: rebuild it with "
        "`nox -s data -- dvc repro train@sigmoid_deep`, then push." in push.output
    )
    assert "now holds every output" not in push.output

    remove_tree(project / "data")
    remove_tree(project / ".dvc" / "cache")
    pull = nox_data(project, env, "pull")
    assert pull.returncode == 0, pull.output
    assert digest_tree(project / "data") == data
    assert (
        "Not available: models/sigmoid_deep-sigmoid.pt (recorded in dvc.lock by stage "
        f"train@sigmoid_deep) is neither in your cache nor on {remote}; rebuild it with "
        "`nox -s data -- dvc repro train@sigmoid_deep`." in pull.output
    )
    assert "The data set is complete; training can run." in pull.output


def capture(action: Callable[[], object]) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        action()
    return out.getvalue()


def run_printed_action(printed: str, repo: Path) -> int:
    words = printed.split()
    assert words[:4] == ["nox", "-s", "data", "--"], printed
    return run_action(words[4], words[5:], root=repo)
