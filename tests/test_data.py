"""The `data` session and `ensure_data` against real DVC on throw-away repositories."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

import sessions.data.dvc
import sessions.data.session
from sessions.data.dvc import Remote
from sessions.data.session import DataError, ensure_data, explain, run_action
from sessions.files import remove_tree
from tests.conftest import ROOT, RecordingSession
from tests.support.data_cli import PRINTED
from tests.support.dvc_repo import copy_repo, digest_tree, dvc, isolate, write_data
from tests.support.platforms import skip_on


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


def s3_error(code: str, operation: str) -> BaseException:
    """S3's answer as botocore raises it, translated as s3fs translates it for DVC."""
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    answer = ClientError({"Error": {"Code": code, "Message": code}}, operation)
    try:  # raised while handling the answer, as s3fs raises it
        raise answer
    except ClientError as error:
        translated: BaseException = translate_boto_error(error, set_cause=False)
        translated.__context__ = error
        return translated


def failures() -> dict[str, BaseException]:
    """What DVC raises for each failure (the types that real runs against SeaweedFS raise)."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    return {
        "unreachable": EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/x.dir"),
        "credentials": s3_error("403", "HeadObject"),
        "wrong key": s3_error("InvalidAccessKeyId", "ListObjectsV2"),
        "no credentials": NoCredentialsError(),
        "bucket": s3_error("NoSuchBucket", "ListObjectsV2"),
    }


EXPECTED = {
    "unreachable": "unreachable",
    "credentials": "rejected the credentials",
    "wrong key": "rejected the credentials",
    "no credentials": "no S3 credentials",
    "bucket": "does not create buckets",
}
REMOTE = Remote("s3", "s3://team-bucket/gradient-lab")


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_failure_is_one_sentence_that_says_what_to_do(case: str) -> None:
    message = explain("push", failures()[case], ["-r", "s3"], REMOTE)
    assert EXPECTED[case] in message
    assert "the remote 's3' (s3://team-bucket/gradient-lab)" in message
    # Every command it names is one the data session runs, with the user's own arguments.
    for printed in PRINTED.findall(message):
        assert printed.split()[4] in sessions.data.session.ACTIONS, printed
    assert "rerun `nox -s data -- push -r s3`" in message
    assert message.startswith("dvc push failed")
    assert "\n" not in message
    assert message.endswith(".")
    assert message.count(". ") == 0, "one sentence"


def test_a_failure_is_told_by_its_type_wherever_dvc_raised_or_logged_it() -> None:
    from dvc.exceptions import DvcException, UploadError

    error = failures()["credentials"]
    try:
        raise DvcException("failed to push data to the cloud") from error
    except DvcException as wrapped:
        assert "rejected the credentials" in explain("push", wrapped, [], REMOTE)
    # A file that failed to upload: DVC counts it and logs the exception it caught.
    logged = [failures()["unreachable"]]
    assert "is unreachable" in explain("push", UploadError(3), [], REMOTE, logged)
    assert "(3 files failed to upload)" in explain("push", UploadError(3), [], REMOTE)


# The same connection failures as the other systems' sockets and the HTTP client raise them: the
# type says it, whatever words the system uses.
OTHER_SYSTEMS = {
    "windows refused": lambda: ConnectionRefusedError(10061, "No connection could be made"),
    "windows reset": lambda: ConnectionResetError(10054, "An existing connection was closed"),
    "unknown host": lambda: socket.gaierror(11001, "getaddrinfo failed"),
    "timed out": TimeoutError,
    "server disconnected": aiohttp.ServerDisconnectedError,
    "connection closed": lambda: ConnectionClosedError(endpoint_url="http://s3.invalid"),
    "read timeout": lambda: ReadTimeoutError(endpoint_url="http://s3.invalid"),
}


@pytest.mark.parametrize("case", sorted(OTHER_SYSTEMS))
def test_connection_failures_of_every_kind_say_unreachable(case: str) -> None:
    message = explain("push", OTHER_SYSTEMS[case](), ["-r", "s3"], REMOTE)
    said = "dvc push failed: the remote 's3' (s3://team-bucket/gradient-lab) is unreachable;"
    assert message.startswith(said), message


def test_an_unknown_failure_quotes_dvcs_error() -> None:
    from dvc.exceptions import DvcException

    message = explain("pull", DvcException("something new broke\nmore"), ["data.dvc"], REMOTE)
    assert message == (
        "dvc pull failed (something new broke); `nox -s data -- pull data.dvc -v` shows DVC's log."
    )


# --- the session and its command line -----------------------------------------------------


def test_an_option_dvc_does_not_take_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError) as error:
        sessions.data.dvc.options("push", ["--no-such-option"])
    assert str(error.value) == (
        "dvc push does not take those options: DVC's message above names them and lists the "
        "ones it takes"
    )
    printed = capsys.readouterr()  # DVC's help (its error line goes to its own log handler)
    assert "usage: dvc push" in printed.out + printed.err


def test_session_rejects_a_missing_or_unknown_action(tmp_path: Path) -> None:
    for posargs in ([], ["fetch"]):
        session = RecordingSession(tmp_path, posargs=posargs)
        with pytest.raises(RuntimeError, match=r"pull\|push\|status"):
            sessions.data.session.run(session)  # type: ignore[arg-type]
        assert not session.installs


def test_session_installs_the_data_group_and_the_project_and_passes_posargs(
    tmp_path: Path,
) -> None:
    session = RecordingSession(tmp_path, posargs=["push", "-r", "s3"])
    sessions.data.session.run(session)  # type: ignore[arg-type]
    # The project (editable) too: `ensure` runs its generator, `dvc repro` its training.
    assert any("dvc[s3]>=3.60" in args and "--editable" in args for args in session.installs)
    assert session.runs == [("python", "-m", "sessions.data", "push", "-r", "s3")]


def test_cli_usage_and_unknown_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert sessions.data.session.main([]) == 2
    assert sessions.data.session.main(["fetch"]) == 1
    assert "unknown action 'fetch'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_reports_a_failure_in_one_line(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sessions.data", "push", "-r", "nonexist"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: dvc push failed: no remote named 'nonexist' is configured; "
        "`nox -s data -- dvc remote list` shows the ones that are."
    ]
    # The command it prints, run as printed (through the session's CLI), lists the remotes.
    listed = subprocess.run(
        [sys.executable, "-m", "sessions.data", "dvc", "remote", "list"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert listed.returncode == 0
    # DVC wraps a long URL at 80 columns: the name, then the URL over one or more lines.
    name, *url = listed.stdout.split()
    url_read = "".join(url).removesuffix("(default)")
    assert (name, url_read) == ("local", str(repo.parent / "local-store"))


# --- push, pull, status with the local remote ---------------------------------------------


@pytest.mark.slow
def test_push_then_pull_restores_identical_bytes(tracked: Path) -> None:
    before = digest_tree(tracked / "data")
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    run_action("pull", root=tracked)
    assert digest_tree(tracked / "data") == before


@pytest.mark.slow
def test_status_reports_workspace_and_remote(
    tracked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = (tracked.parent / "local-store").resolve()
    run_action("status", root=tracked)
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "Workspace vs records (the .dvc files and dvc.lock):",
        "  Data and pipelines are up to date.",
        f"Cache vs remote 'local' ({store}):",
        "  in sync: the remote holds every recorded output.",
    ]
    (tracked / "data" / "part-000.bin").write_bytes(b"edited")
    remove_tree(store)
    run_action("status", root=tracked)
    out = capsys.readouterr().out
    assert "modified:" in out.split("Cache vs remote")[0]
    assert "the remote does not exist yet; `nox -s data -- push` creates it." in out
    assert "data/: in your cache, not on the remote; `nox -s data -- push` uploads it." in out


@pytest.mark.slow
def test_a_pull_over_edits_stops_and_the_printed_force_pull_restores(tracked: Path) -> None:
    before = digest_tree(tracked / "data")
    (tracked / "data" / "part-000.bin").write_bytes(b"edited")
    with pytest.raises(DataError) as error:
        run_action("pull", root=tracked)
    assert str(error.value) == (
        "dvc pull failed: your workspace has edits that the pull would overwrite; "
        "`nox -s data -- pull --force` replaces them with the recorded versions, "
        "`nox -s data -- status` shows them"
    )
    assert (tracked / "data" / "part-000.bin").read_bytes() == b"edited", "nothing overwritten"
    printed = PRINTED.findall(str(error.value))
    assert printed == ["nox -s data -- pull --force", "nox -s data -- status"]
    for command in printed:
        assert run_action(*command.split()[4:5], command.split()[5:], root=tracked) == 0
    assert digest_tree(tracked / "data") == before


@pytest.mark.slow
def test_pull_from_a_remote_without_the_data_fails_clearly(tracked: Path) -> None:
    dvc(tracked, "remote", "add", "empty", str(tracked.parent / "empty-store"))
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    with pytest.raises(DataError) as error:
        run_action("pull", ["-r", "empty"], root=tracked)
    assert str(error.value) == (
        "data/ is recorded in data.dvc but neither in your cache nor on the remote 'empty' "
        f"({tracked.parent / 'empty-store'}), which does not exist yet: regenerate it with "
        "`nox -s data -- ensure`"
    )


# --- ensure_data: what training calls first -----------------------------------------------


@pytest.mark.slow
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


@pytest.mark.slow
def test_current_data_are_used_as_they_are(tracked: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (tracked / "data").iterdir()}
    generate = Generator()
    assert ensure_data(generate, root=tracked) == "current"
    assert generate.calls == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tracked / "data").iterdir()} == before


@pytest.mark.slow
def test_deleted_data_comes_back_from_the_cache(tracked: Path) -> None:
    before = digest_tree(tracked / "data")
    remove_tree(tracked / "data")
    generate = Generator()
    assert ensure_data(generate, root=tracked, notice=lambda _: None) == "restored"
    assert digest_tree(tracked / "data") == before
    assert generate.calls == 0


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert "the remote 'local' (" in notices[0] and "gone) does not exist yet" in notices[0]
    # The same seed gives the recorded bytes: said so, and cached so that a push can share it.
    assert notices[1].startswith("The regenerated data/ is the version data.dvc records")
    assert len(notices) == 2
    assert sessions.data.session.workspace_state(tracked) == "current"
    assert "data.dvc" not in dvc(tracked, "status"), "workspace, cache and record agree"


@pytest.mark.slow
def test_regenerated_data_train_even_when_the_cache_cannot_take_them(tracked: Path) -> None:
    # As a container user who may not write there: the cache cannot be made, the data are right.
    dvc(tracked, "remote", "modify", "local", "url", str(tracked.parent / "gone"))
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    (tracked / ".dvc" / "cache").write_text("not a folder", encoding="utf-8")
    notices: list[str] = []
    assert ensure_data(Generator(seed=0), root=tracked, notice=notices.append) == "regenerated"
    assert sessions.data.session.workspace_state(tracked) == "current"
    assert notices[-1].startswith("Notice: the regenerated data/ is the version data.dvc records")
    assert "could not add it to the cache (" in notices[-1] and "(no output)" not in notices[-1]


@pytest.mark.slow
def test_regenerated_data_that_differ_from_the_record_are_announced(tracked: Path) -> None:
    dvc(tracked, "remote", "modify", "local", "url", str(tracked.parent / "gone"))
    remove_tree(tracked / "data")
    remove_tree(tracked / ".dvc" / "cache")
    notices: list[str] = []
    assert ensure_data(Generator(seed=1), root=tracked, notice=notices.append) == "regenerated"
    recorded = yaml.safe_load((tracked / "data.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    assert recorded.endswith(".dir")
    assert any("differs from the version data.dvc records" in n and recorded in n for n in notices)


@pytest.mark.slow
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
    models = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["models"]
    for name, model in models.items():
        assert f"train@{name}" in listed
        assert f"models/{name}-{model['activation']}.pt" in listed


@pytest.mark.slow
def test_data_session_is_listed_but_not_a_ci_gate() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--json", "-k", "True"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    sessions_by_name = {entry["name"]: entry for entry in json.loads(listed)}
    assert "pull|push|status" in sessions_by_name["data"]["description"]
    assert "ci" not in sessions_by_name["data"]["tags"]


# --- an interrupted push ------------------------------------------------------------------


@pytest.mark.slow
@skip_on("win32", reason="signals a POSIX process group")
def test_a_push_stopped_midway_says_interrupted_and_the_printed_rerun_completes(
    tracked: Path,
) -> None:
    import signal

    from tests.support.data_cli import files_under, start_push, wait_until

    # Enough small files that a one-at-a-time push lasts seconds.
    write_data(tracked / "data", files=1500, size=2 * 1024, seed=5)
    dvc(tracked, "add", "-q", "data")
    store = tracked.parent / "local-store"
    landed_before = files_under(store)
    push = start_push(tracked, dict(os.environ), "-j", "1")
    wait_until(lambda: files_under(store) > landed_before + 20 or push.poll() is not None)
    os.killpg(push.pid, signal.SIGINT)  # Ctrl-C in the terminal that runs it
    _, stderr = push.communicate(timeout=60)
    landed = files_under(store) - landed_before
    assert 0 < landed < 1500, f"not stopped midway ({landed} files landed)"
    assert push.returncode == 1
    sentence = stderr.strip().splitlines()[-1]
    assert sentence == (
        f"error: the push to the remote 'local' ({store}) was interrupted (stopped with Ctrl-C) "
        "before it finished, and nothing in your workspace or cache was lost: rerun the push "
        "with `nox -s data -- push -j 1`."
    )
    # A later status says so too, with the command.
    status = subprocess.run(
        [sys.executable, "-m", "sessions.data", "status"],
        cwd=tracked, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert (
        f"The last push to the remote 'local' ({store}) was interrupted before it finished: "
        "rerun the push with `nox -s data -- push`." in status.stdout
    )
    # The printed command, run as printed, completes it.
    (printed,) = PRINTED.findall(sentence)
    assert run_action(*printed.split()[4:5], printed.split()[5:], root=tracked) == 0
    assert files_under(store) - landed_before == 1500 + 2  # the old data's .dir listing too
    assert not (tracked / ".dvc" / "tmp" / "push-in-progress").exists()


# --- the repository's train stage ---------------------------------------------------------


def test_train_stage_depends_on_the_folders_of_its_code_and_the_data() -> None:
    """The library and the scripts as folders, as DVC's own examples do: whatever the command
    imports from them, a change there retrains (a change to a module it never imports, too)."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train"]
    module = re.search(r"python -m (\S+)", stage["do"]["cmd"])
    assert module and module.group(1).split(".")[0] == "experiments"
    assert stage["do"]["deps"] == ["src/gradient_lab", "experiments", "data"]
    # The library is the only first-party package the scripts import besides their own.
    assert sorted(p.name for p in (ROOT / "src").iterdir() if (p / "__init__.py").is_file()) == [
        "gradient_lab"
    ]


@pytest.mark.slow
def test_running_the_code_keeps_a_folder_dep_current_and_an_edit_makes_it_stale(
    repo: Path,
) -> None:
    """A stage with a code folder as its dep, and the project's .dvcignore: the bytecode Python
    writes into the folder when the stage (or anything else) imports the code is no change; an
    edit to any file there is one."""
    shutil.copy(ROOT / ".dvcignore", repo / ".dvcignore")
    package = repo / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "used.py").write_text("VALUE = 1\n", encoding="utf-8")
    (package / "unused.py").write_text("", encoding="utf-8")
    (repo / "dvc.yaml").write_text(
        "stages:\n  run:\n    cmd: python -c 'import pkg.used'\n    deps:\n      - pkg\n",
        encoding="utf-8",
    )
    dvc(repo, "repro", "-q")
    assert list((package / "__pycache__").glob("used.*.pyc")), "the command wrote bytecode"
    assert json.loads(dvc(repo, "status", "--json")) == {}
    # Without the .dvcignore rule the same bytecode would make the stage stale.
    ignore = (repo / ".dvcignore").read_text(encoding="utf-8")
    (repo / ".dvcignore").write_text(ignore.replace("**/__pycache__/", ""), encoding="utf-8")
    assert "changed deps" in json.dumps(json.loads(dvc(repo, "status", "--json")))
    (repo / ".dvcignore").write_text(ignore, encoding="utf-8")
    (package / "unused.py").write_text("# edited\n", encoding="utf-8")
    stale = json.loads(dvc(repo, "status", "--json"))
    assert stale == {"run": [{"changed deps": {"pkg": "modified"}}]}


def test_dvc_lock_records_the_deps_that_dvc_yaml_lists() -> None:
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train"]
    for name, locked in lock.items():
        assert name.startswith("train@")
        assert sorted(dep["path"] for dep in locked["deps"]) == sorted(stage["do"]["deps"])


def test_clear_empties_a_folder_but_keeps_it(tmp_path: Path) -> None:
    """A container's bind-mounted data/ cannot be removed: regenerating empties it instead."""
    from sessions.data.session import clear

    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "part.bin").write_bytes(b"x")
    (folder / "stale.npz").write_bytes(b"x")
    clear(folder)
    assert folder.is_dir() and not any(folder.iterdir())
    clear(tmp_path / "absent")
    stray = tmp_path / "file"
    stray.write_text("x", encoding="utf-8")
    clear(stray)
    assert not stray.exists()


def test_the_same_weights_saved_twice_are_the_same_bytes(tmp_path: Path) -> None:
    """DVC records weights by their bytes: a retrain that gives the same weights must not look
    like new ones (torch names a saved archive's records after the file it writes)."""
    import torch

    from gradient_lab.files import atomic_save

    state = torch.nn.Linear(3, 2).state_dict()
    first = atomic_save(state, tmp_path / "a" / "model.pt").read_bytes()
    assert atomic_save(state, tmp_path / "b" / "model.pt").read_bytes() == first
    assert torch.load(tmp_path / "a" / "model.pt", weights_only=True).keys() == state.keys()
