"""`nox -s data` on a fresh copy of the project with no remote store yet, as a new user meets
it: each command's exit code and message, then each command a message prints, run as printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.data_cli import data_env, fresh_copy, nox_data, run_printed
from tests.support.dvc_repo import digest_tree

pytestmark = pytest.mark.slow

WEIGHTS = "models/sigmoid_deep-sigmoid.pt"
REPRO = "nox -s data -- dvc repro train@sigmoid_deep"


def test_a_new_user_gets_from_a_fresh_copy_to_a_shared_remote(tmp_path: Path) -> None:  # noqa: PLR0915 - one story, step by step
    project = fresh_copy(tmp_path)
    env = data_env(tmp_path)
    store = tmp_path / "clone" / "gradient-lab-dvc-store"
    remote = f"the remote 'local' ({store})"

    # status: labelled, names the remote and its URL, says it does not exist and what creates it.
    status = nox_data(project, env, "status")
    assert status.returncode == 0, status.output
    assert "Workspace vs records" in status.output
    assert f"Cache vs remote 'local' ({store}):" in status.output
    assert "the remote does not exist yet; `nox -s data -- push` creates it." in status.output
    assert (
        "data/: neither in your cache nor on the remote; regenerate it with "
        "`nox -s data -- ensure`." in status.output
    )
    assert (
        f"{WEIGHTS}: neither in your cache nor on the remote; rebuild it with `{REPRO}`."
        in status.output
    )
    assert status.printed() == ["nox -s data -- push", "nox -s data -- ensure", REPRO]
    assert "(the default remote)" not in status.output

    # pull: nothing to pull, the data set is what fails; the weights are listed, not fatal.
    pull = nox_data(project, env, "pull")
    assert pull.returncode == 1, pull.output
    assert pull.output.strip().splitlines()[-1] == (
        f"error: data/ is recorded in data.dvc but neither in your cache nor on {remote}, which "
        "does not exist yet: regenerate it with `nox -s data -- ensure`."
    )
    assert (
        f"Not available: {WEIGHTS} (recorded in dvc.lock by stage train@sigmoid_deep)"
        in pull.output
    )
    assert not (project / "data").exists()

    # push (status's advice, run as printed): creates the remote, pushes nothing, says why.
    push = run_printed(project, env, "nox -s data -- push")
    assert push.returncode == 1, push.output
    assert store.is_dir(), "the push created the remote, as status said"
    assert f"Pushed 0 file(s) to {remote}; it now holds none." in push.output
    assert (
        f"data/ is recorded in data.dvc but neither in your cache nor on {remote}: regenerate "
        "it with `nox -s data -- ensure`, then push." in push.output
    )
    assert (
        f"{WEIGHTS} is recorded in dvc.lock by stage train@sigmoid_deep but neither in your "
        f"cache nor on {remote}: rebuild it with `{REPRO}`, then push." in push.output
    )
    assert "Everything is up to date" not in push.output
    assert "now holds every output" not in push.output

    # ensure (the advice for data/): regenerates the recorded version into workspace and cache.
    ensure = run_printed(project, env, "nox -s data -- ensure")
    assert ensure.returncode == 0, ensure.output
    assert (
        f"could not get data/ from DVC (neither your cache nor {remote} holds it)" in ensure.output
    )
    assert "The regenerated data/ is the version data.dvc records" in ensure.output
    data = digest_tree(project / "data")
    assert set(data) == {"synthetic.npz", "synthetic_data_sample.png"}

    # push again: the data set lands; the weights that exist nowhere make it exit 1.
    push = nox_data(project, env, "push")
    assert push.returncode == 1, push.output
    assert f"Pushed 3 file(s) to {remote}; it now holds data/." in push.output
    assert f"{WEIGHTS} is recorded in dvc.lock" in push.output
    assert push.output.strip().splitlines()[-1] == (
        f"error: the push is incomplete: {remote} lacks {WEIGHTS}, recorded but not pushed "
        "(see above)."
    )

    # pull: the data set is complete, so it succeeds and names the weights; --all makes it fail.
    pull = nox_data(project, env, "pull")
    assert pull.returncode == 0, pull.output
    assert "The data set is complete; training can run." in pull.output
    assert f"rebuild it with `{REPRO}`" in pull.output
    assert digest_tree(project / "data") == data
    strict = nox_data(project, env, "pull", "--all")
    assert strict.returncode == 1, strict.output
    assert f"error: --all: {WEIGHTS} could not be pulled (see above)." in strict.output

    # The rebuild command, as printed: trains the model and records it in dvc.lock (unmeasured:
    # test_report's retraining runs the same lines).
    assert pull.printed() == [REPRO]
    repro = run_printed(project, env, REPRO, measured=False)
    assert repro.returncode == 0, repro.output
    assert (project / WEIGHTS).is_file()

    # "then push": now the remote holds everything that is recorded.
    push = nox_data(project, env, "push")
    assert push.returncode == 0, push.output
    assert f"Pushed 1 file(s) to {remote}; it now holds data/, {WEIGHTS}." in push.output
    assert f"The remote 'local' ({store}) now holds every output" in push.output
    status = nox_data(project, env, "status")
    assert "in sync: the remote holds every recorded output." in status.output
    assert "Data and pipelines are up to date." in status.output


def test_ensure_on_edited_data_stops_and_both_ways_out_work(tmp_path: Path) -> None:
    project = fresh_copy(tmp_path)
    env = data_env(tmp_path)
    assert nox_data(project, env, "ensure").returncode == 0
    recorded = digest_tree(project / "data")
    (project / "data" / "synthetic.npz").write_bytes(b"edited")

    stop = nox_data(project, env, "ensure")
    assert stop.returncode == 1, stop.output
    assert "error: data/ differs from the version data.dvc records" in stop.output
    restore, record = stop.printed()
    assert restore == "nox -s data -- pull --force data.dvc"
    assert record == "nox -s data -- dvc add data"

    # The recorded version comes back over the edit (from the cache; no remote exists).
    pulled = run_printed(project, env, restore)
    assert pulled.returncode == 0, pulled.output
    assert digest_tree(project / "data") == recorded
    assert nox_data(project, env, "ensure").output.strip().endswith("data/ matches data.dvc.")

    # Or the edit becomes the recorded version.
    (project / "data" / "synthetic.npz").write_bytes(b"edited")
    before = (project / "data.dvc").read_text(encoding="utf-8")
    added = run_printed(project, env, record)
    assert added.returncode == 0, added.output
    assert (project / "data.dvc").read_text(encoding="utf-8") != before
    assert nox_data(project, env, "ensure").returncode == 0
