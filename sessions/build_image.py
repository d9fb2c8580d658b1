"""The `build-image` session: build the workspace image, smoke-run it, report its size.

`nox -s build-image -- --help` lists the options. The Docker client and engine are external
tools: the session installs nothing into its venv.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sessions.project import ROOT

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import nox

IMAGE = "gradient-lab"
DOCKERFILE = ROOT / "Dockerfile"
BUILD_INPUTS = ROOT / "docker" / "build-inputs"
MODELS = ROOT / "models"
SMOKE_WEIGHTS = "build-image-smoke-relu.pt"

NO_CLIENT = (
    "The `docker` command is not installed: install Docker Engine or Docker Desktop "
    "(https://docs.docker.com/get-docker/) and run `nox -s build-image` again."
)
NO_ENGINE = (
    "No Docker engine answers{where}: start one (Docker Desktop, or `sudo systemctl start "
    "docker` / `dockerd` on Linux) and point DOCKER_HOST at it if it does not use the default "
    "socket."
)

# Runs as the image's own (non-root) user.
SMOKE_IMPORTS = (
    "import os, torch, wandb, dvc.api\n"
    "assert os.getuid() != 0, 'the image runs as root'\n"
    "print(f'uid={os.getuid()} torch={torch.__version__} wandb={wandb.__version__}')\n"
)
# The demo's smoke run (a few seconds), its weights saved into the mounted models/ folder.
# Scratch (data, W&B run) goes to /tmp: an arbitrary host uid may not own /workspace.
SMOKE_TRAIN = (
    "python", "-m", "experiments.demo_vanishing_gradients", "--smoke", "--no-progress",
    "--activation", "relu", "--name", "build-image-smoke", "--wandb-mode", "offline",
    "--run-dir", "/tmp", "--data-dir", "/tmp/data",  # nosec B108 - the container's /tmp
    "--models-dir", "/workspace/models",
)  # fmt: skip


# Options a machine can set once in its environment (CI behind a proxy, without a registry).
ENV_DEFAULTS = {
    "extra_ca": "BUILD_IMAGE_EXTRA_CA",
    "wheelhouse": "BUILD_IMAGE_WHEELHOUSE",
    "network": "BUILD_IMAGE_NETWORK",
}


class OptionError(ValueError):
    """Bad `-- <options>`: the message says which and why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise OptionError(message)


@dataclass(frozen=True)
class Options:
    tags: tuple[str, ...] = ()
    cuda: str | None = None
    no_cache: bool = False
    extra_ca: Path | None = None
    wheelhouse: Path | None = None
    network: str | None = None
    help: bool = False


def _parser() -> _Parser:
    parser = _Parser(
        prog="nox -s build-image --",
        description="Build the workspace image (tagged with the commit and `latest`), "
        "smoke-run it and print its size.",
        add_help=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("--tag", action="append", default=[], help="an extra tag (repeatable)")
    parser.add_argument(
        "--cuda",
        metavar="VARIANT",
        help="a CUDA build of torch, e.g. cu128 (PyTorch's wheel index must be reachable)",
    )
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    parser.add_argument("--extra-ca", type=Path, metavar="FILE", help="PEM CAs pip trusts")
    parser.add_argument(
        "--wheelhouse", type=Path, metavar="DIR", help="local wheels pip prefers (offline torch)"
    )
    parser.add_argument(
        "--network", metavar="MODE", help="network for build and smoke runs, e.g. host"
    )
    parser.epilog = "Defaults from the environment: " + ", ".join(
        f"{var} (--{key.replace('_', '-')})" for key, var in ENV_DEFAULTS.items()
    )
    return parser


def usage() -> str:
    return _parser().format_help()


def parse_options(posargs: Sequence[str], environ: Mapping[str, str] = os.environ) -> Options:
    parser = _parser()
    parser.set_defaults(
        **{key: environ[var] for key, var in ENV_DEFAULTS.items() if environ.get(var)}
    )
    args = parser.parse_args(list(posargs))
    cuda = args.cuda
    if cuda is not None and (not cuda.startswith("cu") or not cuda[2:].isdigit()):
        raise OptionError(f"--cuda takes a CUDA variant such as cu128, not {cuda!r}")
    for tag in args.tag:
        if not tag or len(tag) > 128 or not all(c.isalnum() or c in "._-" for c in tag):
            raise OptionError(f"--tag {tag!r} is not a valid image tag")
    if args.extra_ca is not None and not args.extra_ca.is_file():
        raise OptionError(f"--extra-ca {args.extra_ca} is not a file")
    if args.wheelhouse is not None and not args.wheelhouse.is_dir():
        raise OptionError(f"--wheelhouse {args.wheelhouse} is not a folder")
    return Options(
        tags=tuple(args.tag),
        cuda=cuda,
        no_cache=args.no_cache,
        extra_ca=args.extra_ca,
        wheelhouse=args.wheelhouse,
        network=args.network,
        help=args.help,
    )


def engine_version(env: Mapping[str, str] | None = None) -> str | None:
    """The engine's version, or None when no engine answers (DOCKER_HOST is honoured)."""
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True, text=True, timeout=30, env=None if env is None else dict(env),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    version = result.stdout.strip()
    return version if result.returncode == 0 and version else None


def engine_problem(env: Mapping[str, str] = os.environ) -> str | None:
    """One sentence saying why no image can be built here, or None when an engine answers."""
    if shutil.which("docker", path=env.get("PATH")) is None:
        return NO_CLIENT
    if engine_version(env) is None:
        host = env.get("DOCKER_HOST")
        return NO_ENGINE.format(where=f" at {host}" if host else "")
    return None


def git_revision(root: Path = ROOT) -> str | None:
    """The commit SHA of the source, suffixed `-dirty` when the tree has uncommitted changes."""
    git = shutil.which("git")
    if git is None:
        return None
    head = subprocess.run([git, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        return None
    status = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=no"],
        cwd=root, capture_output=True, text=True,
    )  # fmt: skip
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def image_tags(options: Options, revision: str | None) -> list[str]:
    """`<sha>` and `latest` (with a `-<cuda>` suffix for CUDA builds), then the extra tags."""
    suffix = f"-{options.cuda}" if options.cuda else ""
    tags = ["latest"]
    if revision:
        sha, dirty, _ = revision.partition("-dirty")
        tags.insert(0, sha[:12] + dirty)
    return [f"{IMAGE}:{tag}{suffix}" for tag in tags] + [f"{IMAGE}:{t}" for t in options.tags]


def build_command(
    options: Options,
    revision: str | None,
    created: str,
    context: Path = ROOT,
    tags: Sequence[str] | None = None,
) -> list[str]:
    command = ["docker", "build", "--file", str(context / DOCKERFILE.name)]
    for tag in image_tags(options, revision) if tags is None else tags:
        command += ["--tag", tag]
    build_args = {"VCS_REF": revision or "unknown", "BUILD_DATE": created}
    if options.cuda:
        build_args["TORCH_VARIANT"] = options.cuda
    if options.wheelhouse is not None:
        # The wheelhouse replaces PyTorch's index: an unreachable index would stall pip.
        build_args["TORCH_INDEX_URL"] = ""
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    if options.no_cache:
        command.append("--no-cache")
    if options.network:
        command += ["--network", options.network]
    return [*command, str(context)]


def host_user() -> str | None:
    """`uid:gid` of this user, so a bind-mounted folder stays writable (None on Windows)."""
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    if getuid is None or getgid is None:
        return None
    return f"{getuid()}:{getgid()}"


def smoke_commands(
    image: str, models: Path, user: str | None, network: str | None
) -> list[list[str]]:
    """Imports as the image's non-root user, then one training step into the host's models/."""
    base = ["docker", "run", "--rm"] + (["--network", network] if network else [])
    train = [*base, "--volume", f"{models.resolve()}:/workspace/models"]
    if user is not None:
        # An arbitrary uid has no home in the image: give it a writable one.
        train += ["--user", user, "--env", "HOME=/tmp"]
    return [
        [*base, image, "python", "-c", SMOKE_IMPORTS],
        [*train, image, *SMOKE_TRAIN],
    ]


def size_command(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Size}}", image]


def prepare_build_inputs(options: Options, folder: Path = BUILD_INPUTS) -> None:
    """Fill the optional build inputs from the options, removing what an earlier build left."""
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.name == "README.md":
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    wheels = folder / "wheels"
    wheels.mkdir()
    if options.extra_ca is not None:
        text = options.extra_ca.read_text(encoding="utf-8", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise OptionError(f"--extra-ca {options.extra_ca} holds no PEM certificate")
        shutil.copyfile(options.extra_ca, folder / "ca.crt")
    if options.wheelhouse is not None:
        found = sorted(options.wheelhouse.glob("*.whl"))
        if not found:
            raise OptionError(f"--wheelhouse {options.wheelhouse} holds no .whl files")
        for wheel in found:
            _link_or_copy(wheel, wheels / wheel.name)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


def human_size(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def run(session: nox.Session) -> None:
    try:
        options = parse_options(session.posargs)
        if options.help:
            session.log(usage())
            return
        problem = engine_problem()
        if problem:
            session.error(problem)
        prepare_build_inputs(options)
    except OptionError as error:
        session.error(f"build-image: {error} (see `nox -s build-image -- --help`).")
    revision = git_revision()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    session.run(*build_command(options, revision, created), external=True)
    image = image_tags(options, revision)[0]

    MODELS.mkdir(exist_ok=True)
    weights = MODELS / SMOKE_WEIGHTS
    weights.unlink(missing_ok=True)
    for command in smoke_commands(image, MODELS, host_user(), options.network):
        session.run(*command, external=True)
    if not weights.is_file() or weights.stat().st_size == 0:
        session.error(f"The smoke step wrote no weights to {weights}: the models/ mount failed.")
    session.log(f"Smoke step wrote {weights} ({weights.stat().st_size} bytes) on the host.")

    size = session.run(*size_command(image), external=True, silent=True)
    session.log(f"Image {image}: {human_size(int(str(size).strip()))}")
