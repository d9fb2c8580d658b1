"""The `data` session and `ensure_data` against real DVC on throw-away repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import sessions.data.dvc
import sessions.data.session
import sessions.data.sync
from sessions.data import record
from sessions.data.dvc import Remote
from sessions.data.session import DataError, ensure_data, explain, run_action
from sessions.files import remove_tree
from tests.conftest import ROOT, RecordingSession
from tests.support.data_cli import PRINTED
from tests.support.dvc_repo import copy_repo, digest_tree, dvc, isolate, write_data
from tests.support.platforms import skip_on, windows_separators


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
    "unknown remote": "`nox -s data -- dvc remote list`",
}


@pytest.mark.parametrize("case", sorted(REAL_FAILURES))
def test_each_failure_is_one_sentence_that_says_what_to_do(case: str) -> None:
    remote = Remote("s3", "s3://team-bucket/gradient-lab")
    message = explain("push", REAL_FAILURES[case], ["-r", "s3"], remote)
    assert EXPECTED[case] in message
    if "{remote}" in dict(sessions.data.dvc.FAILURES).get(_pattern(case), ""):
        assert "the remote 's3' (s3://team-bucket/gradient-lab)" in message
    assert "(the default remote)" not in message
    # Every command it names is one the data session runs, with the user's own arguments.
    for printed in PRINTED.findall(message):
        assert printed.split()[4] in sessions.data.session.ACTIONS, printed
    if "rerun" in message:
        assert "rerun `nox -s data -- push -r s3`" in message
    assert message.startswith("dvc push failed")
    assert "\n" not in message
    assert message.endswith(".")
    assert message.count(". ") == 0, "one sentence"


def _pattern(case: str) -> str:
    import re

    return next(p for p, _ in sessions.data.dvc.FAILURES if re.search(p, REAL_FAILURES[case], re.I))


# The same failures in the words of the other systems' sockets, as Python quotes them there
# (Windows' messages are its documented texts: no Windows machine runs here).
OTHER_SYSTEMS = {
    "windows refused": "ERROR: unexpected error - Cannot connect to host 127.0.0.1:9 ssl:default "
    "[WinError 10061] No connection could be made because the target machine actively refused it",
    "windows proactor refused": "ERROR: unexpected error - ConnectionRefusedError: [WinError "
    "1225] The remote computer refused the network connection",
    "windows reset": "ERROR: failed to push data to the cloud - [WinError 10054] An existing "
    "connection was forcibly closed by the remote host",
    "windows unknown host": "ERROR: unexpected error - Cannot connect to host s3.invalid:443 "
    "ssl:default [getaddrinfo failed] [WinError 11001]",
    "macos unknown host": "ERROR: unexpected error - Cannot connect to host s3.invalid:443 "
    "ssl:default [nodename nor servname provided, or not known]",
}


@pytest.mark.parametrize("case", sorted(OTHER_SYSTEMS))
def test_connection_failures_in_windows_and_macos_words_say_unreachable(case: str) -> None:
    remote = Remote("s3", "s3://team-bucket/gradient-lab")
    message = explain("push", OTHER_SYSTEMS[case], ["-r", "s3"], remote)
    assert message.startswith("dvc push failed: the remote 's3' (s3://team-bucket/gradient-lab) "
                              "is unreachable;"), message  # fmt: skip
    assert sessions.data.dvc.is_connection_failure(OTHER_SYSTEMS[case])


def test_an_unknown_failure_quotes_dvc_error_line() -> None:
    message = explain("pull", "noise\nERROR: something new broke\nmore", ["data.dvc"])
    assert "ERROR: something new broke" in message
    assert "`nox -s data -- pull data.dvc -v` shows DVC's log" in message


# --- the session and its command line -----------------------------------------------------


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


@pytest.mark.slow
def test_dvc_paths_in_windows_form_are_compared_as_paths(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DVC prints the paths it reports with the host's separator: `data\\` on Windows.
    windows_separators(monkeypatch)
    (tracked / "data" / "part-000.bin").write_bytes(b"edited")
    assert sessions.data.session.workspace_state(tracked) == "modified"
    remove_tree(tracked / "data")
    assert sessions.data.session.workspace_state(tracked) == "deleted"
    # A pull from a remote without the data fails (DVC lists data\\ as still deleted).
    dvc(tracked, "remote", "add", "empty", str(tracked.parent / "empty-store"))
    remove_tree(tracked / ".dvc" / "cache")
    with pytest.raises(DataError, match=r"is recorded in data\.dvc but neither in your cache"):
        run_action("pull", ["-r", "empty"], root=tracked)


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
def test_current_data_is_used_without_work(tracked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dvc(*_: object, **__: object) -> None:
        raise AssertionError("DVC started for data that are the recorded version")

    monkeypatch.setattr(sessions.data.sync, "dvc", no_dvc)
    generate = Generator()
    assert ensure_data(generate, root=tracked) == "current"
    assert generate.calls == 0


@pytest.mark.slow
def test_the_recorded_version_is_recognised_by_dvcs_own_hash_and_nothing_else_is(
    repo: Path,
) -> None:
    # "a-b/x" sorts before "a/b" as text (DVC's order) but after it as path parts.
    folder = repo / "nested"
    files = {"a-b/x.bin": b"1", "a/b.bin": b"2", "a/c/d.txt": b"3\r\n", "z.bin": b""}
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    dvc(repo, "add", "-q", "nested")
    assert record.folder_hash(folder) == record.recorded_folder_hash(repo / "nested.dvc", "nested")
    assert record.holds_recorded_version(repo, "nested")

    (folder / "a" / "b.bin").write_bytes(b"edited")
    assert not record.holds_recorded_version(repo, "nested")
    (folder / "a" / "b.bin").write_bytes(b"2")
    (folder / "a" / "new.bin").write_bytes(b"")
    assert not record.holds_recorded_version(repo, "nested")
    (folder / "a" / "new.bin").unlink()
    (folder / "z.bin").unlink()
    assert not record.holds_recorded_version(repo, "nested")
    remove_tree(folder)
    assert not record.holds_recorded_version(repo, "nested")

    # Records this does not read are left to DVC: a single file, none at all, DVC 2's hash.
    (repo / "one.bin").write_bytes(b"1")
    dvc(repo, "add", "-q", "one.bin")
    assert record.recorded_folder_hash(repo / "one.bin.dvc", "one.bin") is None
    assert not record.holds_recorded_version(repo, "one.bin")
    assert not record.holds_recorded_version(repo, "absent")
    legacy = repo / "legacy.dvc"
    legacy.write_text("outs:\n- md5: 0123.dir\n  path: legacy\n", encoding="utf-8")
    assert record.recorded_folder_hash(legacy, "legacy") is None
    # A record of another folder, or of two outputs, is not this folder's.
    nested = (repo / "nested.dvc").read_text(encoding="utf-8")
    assert record.recorded_folder_hash(repo / "nested.dvc", "other") is None
    two = repo / "two.dvc"
    two.write_text(nested + nested.split("outs:\n", 1)[1], encoding="utf-8")
    assert record.recorded_folder_hash(two, "nested") is None


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
    recorded = record.recorded_hash(tracked / "data.dvc")
    assert recorded and recorded.endswith(".dir")
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
    import yaml

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
    import json

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

PACKAGES = {"gradient_lab": ROOT / "src", "experiments": ROOT}


def first_party_files(module: str) -> set[str]:
    """The files `python -m MODULE` runs from this repository: the module, the __init__ of
    each package on the way, and recursively every first-party module those import."""
    import ast

    def module_file(name: str) -> Path | None:
        parts = name.split(".")
        if parts[0] not in PACKAGES:
            return None
        base = PACKAGES[parts[0]].joinpath(*parts)
        return next(
            (f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()), None
        )

    def imported(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module, "relative imports: resolve them here"
                # `from package import name` may import the submodule package.name.
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
                names.add(node.module)
        return names

    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):
            found = module_file(".".join(parts[:depth]))
            if found and found not in seen:
                seen.add(found)
                todo.extend(imported(found))
    return {path.relative_to(ROOT).as_posix() for path in seen}


def test_train_stage_deps_are_exactly_the_files_its_command_runs_and_the_data() -> None:
    import re

    import yaml

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["train"]
    module = re.search(r"python -m (\S+)", stage["do"]["cmd"])
    assert module
    code = first_party_files(module.group(1))
    assert "src/gradient_lab/synthetic_data.py" in code, "the walk follows `from pkg import mod`"
    assert "src/gradient_lab/interrupt.py" in code and "src/gradient_lab/layout.py" in code
    assert sorted(stage["do"]["deps"]) == sorted([*code, "data"])


def test_dvc_lock_records_the_deps_that_dvc_yaml_lists() -> None:
    import yaml

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
