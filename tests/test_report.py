"""`nox -s report`: a change's effect on training, against a git ref, in a copy of the project.

The slow tests run the session as a user does (`nox -s report [-- REF]`, in this venv) on a
branch of a project copy, with real DVC and real training; the others test the Markdown and
the figures from DVC's rows directly. One test works in a fresh clone, where the session makes
the data set itself; the others copy a project that has it already, made once per module.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sessions.report.__main__ import COMMENT, publish
from sessions.report.compare import REL_TOLERANCE, Comparison, Revision, same
from sessions.report.figures import draw
from sessions.report.markdown import delta, metric_rows, render
from tests.conftest import measured_in, without_coverage
from tests.support.data_cli import data_env
from tests.support.project_copy import COMMITTER, copy_of, git

STAGE = "train@sigmoid_deep"
REPORT = Path("build") / "report" / "REPORT.md"


# --- The session, at the user's door ----------------------------------------------------------


@pytest.fixture(scope="module")
def project_with_data(project_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with the data set that data.dvc records in data/, as the session leaves a
    fresh clone after its first run: made once, so each test's run skips DVC's round trips
    to find it missing (regenerating it is the fresh-clone test's part)."""
    from gradient_lab.synthetic_data import generate

    template = copy_of(project_template, tmp_path_factory.mktemp("report") / "project")
    generate(template / "data")
    return template


@pytest.fixture
def project(project_with_data: Path, tmp_path: Path) -> Path:
    """This test's own copy of `project_with_data`: tmp_path / "project"."""
    return copy_of(project_with_data, tmp_path / "project")


def nox_report(
    project: Path, env: dict[str, str], *args: str, github: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`nox -s report -- ARGS` in `project`, in this interpreter's environment: as a developer
    runs it, not in the CI job that runs these tests (its event, its job summary); or in the
    GitHub Actions run that `github` describes."""
    local = {k: v for k, v in env.items() if not k.startswith("GITHUB_")} | (github or {})
    return subprocess.run(
        [sys.executable, "-m", "nox", "--no-venv", "-s", "report", "--", *args],
        cwd=project, env=measured_in(project, local) | {"PYTHONPATH": str(project / "src")},
        capture_output=True, text=True, encoding="utf-8",
    )  # fmt: skip


def commit(project: Path, message: str) -> None:
    git("add", "-A", cwd=project)
    git("-c", "commit.gpgsign=false", "commit", "-qm", message, cwd=project,
        env={**data_env(project.parent), **COMMITTER})  # fmt: skip


def on_branch(project: Path) -> None:
    """The copy's one commit is `main`; the change goes on a branch of it."""
    git("branch", "-M", "main", cwd=project)
    git("checkout", "-qb", "change", cwd=project)


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The session's last line (nox's own lines left out)."""
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return [line for line in lines if not line.startswith("nox >")][-1]


@pytest.mark.slow
def test_a_changed_activation_is_retrained_reported_and_exported(
    project: Path, tmp_path: Path
) -> None:
    env = data_env(tmp_path)
    on_branch(project)
    params = project / "params.yaml"
    text = params.read_text("utf-8").replace("activation: sigmoid", "activation: relu")
    params.write_text(text, "utf-8")
    commit(project, "relu instead of sigmoid")

    ran = nox_report(project, env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"Retraining {STAGE}" in ran.stdout
    text = (project / REPORT).read_text("utf-8")
    assert "against the merge base with main" in text
    assert f"Retrained with `dvc repro` first, since their code, data or parameters changed: " \
           f"`{STAGE}`" in text  # fmt: skip
    assert "| `params.yaml:models.sigmoid_deep.activation` | sigmoid | relu |" in text
    ratio = next(line for line in text.splitlines() if "first_to_last (sigmoid → relu)" in line)
    assert "**vanishing → healthy** (changed)" in ratio
    old, new = (float(cell) for cell in ratio.split("|")[2:4])
    assert old < 1e-2 < new  # DVC's figures: sigmoid vanishes, relu does not
    assert "No change" not in text
    # The retrain is DVC's: the lock now records relu's outputs.
    assert "--activation relu" in (project / "dvc.lock").read_text("utf-8")

    figures = sorted(p.name for p in (project / REPORT.parent / "figures").iterdir())
    assert figures == sorted(f"sigmoid_deep-{kind}.{fmt}" for kind in ("loss", "grad-norms",
                             "ratio") for fmt in ("png", "svg"))  # fmt: skip
    for name in figures:
        if name.endswith(".png"):
            assert f"](figures/{name})" in text
    svg = (project / REPORT.parent / "figures" / "sigmoid_deep-ratio.svg").read_text("utf-8")
    assert "old: sigmoid" in svg and "new: relu" in svg

    # The summary carries the evidence: the report's tables and figures in the .docx and PDF.
    out = tmp_path / "summary"
    exported = subprocess.run(
        [sys.executable, "-m", "sessions.summary", "--report", str(REPORT), "--out", str(out)],
        cwd=project, env=measured_in(project, env), capture_output=True, text=True,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    with zipfile.ZipFile(out / "SESSION_SUMMARY.docx") as docx:
        document = docx.read("word/document.xml").decode("utf-8")
        media = [n for n in docx.namelist() if n.startswith("word/media/")]
    assert "first_to_last (sigmoid → relu)" in document
    assert len(media) >= 3  # the report's three figures, and the summary's own
    import pdfplumber

    with pdfplumber.open(out / "SESSION_SUMMARY.pdf") as pdf:
        pages = [(page.extract_text() or "", len(page.curves) + len(page.lines))
                 for page in pdf.pages]  # fmt: skip
    report_pages = [drawn for words, drawn in pages if "Training loss, old (dashed)" in words]
    assert report_pages and report_pages[0] > 0, "the report's figures are drawn in the PDF"


@pytest.mark.slow
def test_a_readme_only_change_is_no_change_and_a_failed_retrain_keeps_its_report(
    project_copy: Path, tmp_path: Path
) -> None:
    """In a fresh clone (the session makes the data set, which must not make DVC retrain), as
    CI runs it for a new branch's push: a README-only change is reported as no change, in the
    job summary too; a stage that then fails to retrain leaves that report as it was."""
    env = data_env(tmp_path)
    on_branch(project_copy)
    (project_copy / "README.md").write_text("# Reworded\n", encoding="utf-8")
    commit(project_copy, "README only")
    lock = (project_copy / "dvc.lock").read_bytes()
    event, summary = tmp_path / "event.json", tmp_path / "step-summary.md"
    event.write_text(json.dumps({"before": "0" * 40}), encoding="utf-8")
    push = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_STEP_SUMMARY": str(summary),
    }

    ran = nox_report(project_copy, env, github=push)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"::notice::{'0' * 40} is not a commit of this clone" in ran.stdout
    text = (project_copy / REPORT).read_text("utf-8")
    assert "the working tree against HEAD^" in text
    assert summary.read_text("utf-8") == (project_copy / REPORT.parent / COMMENT).read_text("utf-8")
    assert "**No change**: no parameter, metric or per-step value differs" in text
    assert "Nothing retrained: dvc.lock says every train stage is up to date." in text
    assert "Retraining" not in ran.stdout
    assert (project_copy / "dvc.lock").read_bytes() == lock
    assert not (tmp_path / "wandb").exists(), "no training run was started"
    assert not list((project_copy / REPORT.parent / "figures").iterdir())

    before = (project_copy / REPORT).read_bytes()
    demo = project_copy / "experiments" / "demo_vanishing_gradients.py"
    planted = demo.read_text("utf-8").replace(
        'if __name__ == "__main__":',
        'raise SystemExit("planted fault")\n\n\nif __name__ == "__main__":',
    )
    demo.write_text(planted, "utf-8")

    summarised = summary.read_bytes()
    failed = nox_report(project_copy, env, "HEAD", github=push)
    assert failed.returncode == 1
    assert last_line(failed) == (
        f"::error::report: `dvc repro {STAGE}` failed: its output above says why; fix the stage "
        "and run the report again."
    )
    assert summary.read_bytes() == summarised, "a failed report adds nothing to the job summary"
    assert "planted fault" in failed.stdout + failed.stderr
    assert (project_copy / REPORT).read_bytes() == before, "the last report is left as it was"
    assert [p.name for p in (project_copy / "build").iterdir()] == ["report"]  # no scratch left


@pytest.mark.slow
def test_bad_refs_are_one_sentence_and_leave_no_report(project: Path, tmp_path: Path) -> None:
    env = data_env(tmp_path)
    unknown = nox_report(project, env, "no-such-branch")
    assert unknown.returncode == 1
    assert last_line(unknown) == (
        "report: 'no-such-branch' is not a commit, branch or tag of this repository: name one "
        "that `git log` shows (e.g. main, HEAD~1, a commit id)."
    )
    # A ref from before the train stages' metrics: an unrelated history with a README only.
    branch = git("branch", "--show-current", cwd=project).strip()
    git("checkout", "-q", "--orphan", "bare", cwd=project)
    git("rm", "-rqf", "--cached", ".", cwd=project)
    git("add", "README.md", cwd=project)
    commit_only_staged(project)
    git("checkout", "-qf", branch, cwd=project)
    without = nox_report(project, env, "bare")
    assert without.returncode == 1
    assert "has no metrics/*.json: it predates the train stages' metrics" in last_line(without)
    assert not (project / "build").exists()

    # No `main` to take a merge base with: the message's command is run as printed.
    git("branch", "-M", "work", cwd=project)
    (project / "README.md").write_text("# Second commit\n", encoding="utf-8")
    commit(project, "a second commit")
    nomain = nox_report(project, env)
    assert nomain.returncode == 1
    printed = last_line(nomain).split("`")[1]
    assert printed == "nox -s report -- HEAD~1"
    words = shlex.split(printed)
    again = nox_report(project, env, *words[words.index("--") + 1 :])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the working tree against HEAD~1" in (project / REPORT).read_text("utf-8")


def commit_only_staged(project: Path) -> None:
    git("-c", "commit.gpgsign=false", "commit", "-qm", "unrelated", cwd=project,
        env={**data_env(project.parent), **COMMITTER})  # fmt: skip


@pytest.mark.slow
def test_a_plots_file_missing_on_either_side(project: Path, tmp_path: Path) -> None:
    env = data_env(tmp_path)
    plots = project / "plots" / "sigmoid_deep.json"
    # The ref lacks it (from before the plots, or a new stage): said, compared with nothing.
    kept = plots.read_bytes()
    git("rm", "-q", str(plots.relative_to(project)), cwd=project)
    commit(project, "no plots file")
    plots.parent.mkdir(exist_ok=True)
    plots.write_bytes(kept)
    noted = nox_report(project, env, "HEAD")
    assert noted.returncode == 0, noted.stdout + noted.stderr
    text = (project / REPORT).read_text("utf-8")
    assert "Note: HEAD (" in text and "has no plots/sigmoid_deep.json" in text
    assert "](figures/sigmoid_deep-loss.png)" in text

    # The working tree lacks one the ref has: one sentence, and its command restores it.
    plots.unlink()
    git("checkout", "-q", "HEAD~1", cwd=project)
    plots.unlink()
    missing = nox_report(project, env, "HEAD")
    assert missing.returncode == 1
    sentence = last_line(missing)
    assert sentence.startswith("report: The working tree has no plots/sigmoid_deep.json")
    printed = sentence.split("`")[1]
    assert printed == "nox -s data -- dvc repro"
    # Unmeasured: the retraining of test_a_changed_activation_is_retrained_... runs its lines.
    # torch's plain kernels stand in for another CPU's: they give other gradient norms (the 7th
    # significant digit), as another machine's SIMD kernels and reduction order do.
    other_cpu = {"PYTHONPATH": str(project / "src"), "ATEN_CPU_CAPABILITY": "default"}
    repro = subprocess.run(
        [sys.executable, "-m", "nox", "--no-venv", "-s", "data", "--", "dvc", "repro"],
        cwd=project, env=without_coverage(env) | other_cpu, capture_output=True, text=True,
    )  # fmt: skip
    assert repro.returncode == 0, repro.stdout + repro.stderr
    assert same(json.loads(plots.read_bytes()), json.loads(kept)), "training is deterministic"
    assert nox_report(project, env, "HEAD").returncode == 0
    assert "**No change**" in (project / REPORT).read_text("utf-8")


# --- The Markdown and the figures, from DVC's rows --------------------------------------------

BASE = Revision("main", "0123456789abcdef", "a subject")


def rows(activation: str, scale: float) -> list[dict[str, Any]]:
    return [
        {"activation": activation, "step": step, "loss": 1.0 / (step + 1),
         "grad_norm/l1": scale * 0.1, "grad_norm/l2": 0.1, "grad_norm/first_to_last": scale}
        for step in (9, 19, 29)
    ]  # fmt: skip


def test_metrics_pair_across_an_activation_change_and_mark_a_changed_verdict() -> None:
    metrics = {
        "metrics/deep.json:sigmoid.loss": {"old": 1.1, "new": None},
        "metrics/deep.json:sigmoid.first_to_last": {"old": 1e-6, "new": None},
        "metrics/deep.json:relu.loss": {"old": None, "new": 0.5},
        "metrics/deep.json:relu.first_to_last": {"old": None, "new": 0.9},
        "metrics/other.json:tanh.loss": {"old": 0.7, "new": 0.7},
    }
    assert metric_rows(metrics) == [
        ("deep: loss (sigmoid → relu)", 1.1, 0.5),
        ("deep: first_to_last (sigmoid → relu)", 1e-6, 0.9),
        ("other: tanh.loss", 0.7, 0.7),
    ]
    text = render(Comparison(BASE, [], metrics=metrics), {})
    assert "| **deep: first_to_last (sigmoid → relu)** | 1e-06 | 0.9 |" in text
    assert "**vanishing → healthy** (changed)" in text
    assert "| other: tanh.loss | 0.7 | 0.7 | 0 |  |" in text  # unchanged: not bold


def test_delta_is_signed_with_its_share() -> None:
    assert delta(1.0, 0.5) == "-0.5 (-50%)"
    assert delta(0.0, 0.5) == "+0.5"
    assert delta(1e-6, 0.9) == "+0.9 (9e+05x)"
    assert delta(2, 2) == "0"
    assert delta(None, 1.0) == "-"


def test_no_change_is_said_and_a_change_in_the_series_alone_is_a_change() -> None:
    same = {"plots/deep.json": {"old": rows("sigmoid", 1e-6), "new": rows("sigmoid", 1e-6)}}
    assert "**No change**" in render(Comparison(BASE, [], plots=same), {})
    moved = {"plots/deep.json": {"old": rows("sigmoid", 1e-6), "new": rows("sigmoid", 2e-6)}}
    assert Comparison(BASE, [], plots=moved).changed


def test_numbers_another_cpu_computes_are_no_change() -> None:
    """Another CPU's gradient norms differ in the 7th significant digit (seen: 7.866989471949637e-05
    against 7.866988744353876e-05): no change; beyond REL_TOLERANCE, a change."""
    other_cpu = rows("sigmoid", 1e-6 * (1 + REL_TOLERANCE / 10))
    plots = {"plots/deep.json": {"old": rows("sigmoid", 1e-6), "new": other_cpu}}
    metrics = {
        "metrics/deep.json:sigmoid.first_to_last": {
            "old": 7.866988744353876e-05,
            "new": 7.866989471949637e-05,
        }
    }
    text = render(Comparison(BASE, [], metrics=metrics, plots=plots), {})
    assert "**No change**" in text
    assert "| deep: sigmoid.first_to_last | 7.867e-05 | 7.867e-05 | ≈0 | vanishing |" in text
    beyond = rows("sigmoid", 1e-6 * (1 + REL_TOLERANCE * 10))
    assert Comparison(BASE, [], plots={"p": {"old": rows("sigmoid", 1e-6), "new": beyond}}).changed


def test_figures_are_drawn_old_against_new_and_the_same_rows_give_the_same_bytes(
    tmp_path: Path,
) -> None:
    sides = {"old": rows("sigmoid", 1e-6), "new": rows("relu", 0.9)}
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    drawn = draw("deep", sides, first)
    draw("deep", sides, second)
    assert [d.name for d in drawn] == ["deep-loss", "deep-grad-norms", "deep-ratio"]
    for d in drawn:
        for fmt in ("png", "svg"):
            assert (first / f"{d.name}.{fmt}").read_bytes() == (
                second / f"{d.name}.{fmt}"
            ).read_bytes()
    svg = (first / "deep-grad-norms.svg").read_text("utf-8")
    assert "old: sigmoid (step 29)" in svg and "new: relu (step 29)" in svg


def test_github_gets_the_report_with_each_figure_a_line_naming_the_artifact(
    tmp_path: Path,
) -> None:
    """GitHub shows no image beside a comment or a job summary: COMMENT.md, and what is appended
    to the job summary, name each figure and the run's `report` artifact instead."""
    plots = {"plots/deep.json": {"old": rows("sigmoid", 1e-6), "new": rows("relu", 0.9)}}
    summary = tmp_path / "step-summary.md"
    summary.write_text("## An earlier step's summary\n", encoding="utf-8")
    run = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "7",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    report = publish(Comparison(BASE, [], plots=plots), tmp_path / "report", run)
    text = report.read_text("utf-8")
    comment = (report.parent / COMMENT).read_text("utf-8")
    assert "![deep: Training loss, old (dashed) against new](figures/deep-loss.png)" in text
    assert "](figures/" not in comment
    assert (
        "Figure “deep: Training loss, old (dashed) against new” (`figures/deep-loss.png`): in "
        "this run's [`report` artifact](https://github.com/o/r/actions/runs/7)."
    ) in comment.splitlines()
    assert comment.count("[`report` artifact](https://github.com/o/r/actions/runs/7)") == 3
    others = [
        [line for line in md.splitlines() if "figures/" not in line] for md in (text, comment)
    ]
    assert others[0] == others[1], "the same report, but for its figures"
    assert summary.read_text("utf-8") == "## An earlier step's summary\n" + comment
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "step-summary.md"]

    # Outside a run: no summary is written, and the artifact has no address to link.
    again = publish(Comparison(BASE, [], plots=plots), tmp_path / "report", {})
    assert "in this run's `report` artifact." in (again.parent / COMMENT).read_text("utf-8")
    assert summary.read_text("utf-8") == "## An earlier step's summary\n" + comment
