"""The platform guard of `lint`: POSIX-only calls in the code that CI runs on every system.

The gate matrix runs on Linux, Windows and macOS, and only Linux runs here. mypy, run by lint
once per platform, fails on a module attribute that a system lacks (`os.killpg` on win32)
outside a `sys.platform` test, and on a statement that a platform test makes unreachable. What
it cannot see are calls that type-check everywhere and misbehave on Windows: the POSIX-only
arguments of `subprocess` (`preexec_fn` raises, `start_new_session` is ignored, so a
process-group kill kills nothing), and signals that Windows' `os.kill` does not deliver but
turns into TerminateProcess. This guard names them, and the module attributes mypy would, with
what to do instead, in `src/`, `sessions/`, `experiments/` and the noxfile.

A call is allowed inside a platform branch: the body or `else` of an `if` (or conditional
expression) whose test reads `sys.platform`, `os.name` or `hasattr(<module>, ...)`, so both
sides are in the open and mypy checks each for its own platform.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from sessions.project import ROOT

CHECKED = ("src", "sessions", "experiments", "noxfile.py")

NO_PROCESS_GROUPS = "Windows has no POSIX process groups or sessions"
# module -> attribute -> why it is POSIX-only (and what Windows does instead).
POSIX_ATTRIBUTES: dict[str, dict[str, str]] = {
    "os": {
        **dict.fromkeys(("killpg", "getpgid", "getpgrp", "setpgid", "setpgrp"), NO_PROCESS_GROUPS),
        **dict.fromkeys(("setsid", "getsid"), NO_PROCESS_GROUPS),
        "fork": "Windows cannot fork; start a process with subprocess",
        **dict.fromkeys(("getuid", "geteuid", "getgid", "getegid"), "Windows has no user ids"),
        "chown": "Windows has no user ids",
        "sync": "Windows has no os.sync",
        "WNOHANG": "Windows has no waitpid options",
    },
    "signal": {
        **dict.fromkeys(
            ("SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD"),
            "Windows has only SIGINT, SIGTERM, SIGBREAK and SIGABRT",
        ),
        **dict.fromkeys(("alarm", "pause", "setitimer", "pthread_kill"), "Windows lacks it"),
    },
}
POSIX_MODULES = {"fcntl", "grp", "pwd", "pty", "resource", "termios"}
# subprocess's POSIX-only keywords: on Windows a ValueError, or silently nothing.
POSIX_KEYWORDS = {
    "preexec_fn": "a ValueError on Windows",
    "start_new_session": "ignored on Windows, where it makes no new process group "
    "(creationflags=subprocess.CREATE_NEW_PROCESS_GROUP does)",
    "process_group": "ignored on Windows",
    "pass_fds": "unsupported on Windows",
    **dict.fromkeys(("user", "group", "extra_groups", "umask"), "a ValueError on Windows"),
}
# Keywords no other call uses: flagged on any call (`Popen` imported by name included).
PROCESS_KEYWORDS = {"preexec_fn", "start_new_session", "process_group", "pass_fds"}


def is_platform_test(test: ast.expr) -> bool:
    """Whether an `if` test asks which system this is."""
    return any(_names_the_platform(node) for node in ast.walk(test))


def _names_the_platform(node: ast.AST) -> bool:
    """`sys.platform`, `os.name` or a `hasattr(...)` probe."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return (node.value.id, node.attr) in {("sys", "platform"), ("os", "name")}
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr"
    )


def violations(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, sentence) for each POSIX-only use outside a platform branch."""
    yield from _visit(tree, in_branch=False)


def _visit(node: ast.AST, *, in_branch: bool) -> Iterator[tuple[int, str]]:
    if isinstance(node, ast.If | ast.IfExp) and is_platform_test(node.test):
        for child in ast.iter_child_nodes(node):
            yield from _visit(child, in_branch=child is not node.test or in_branch)
        return
    if not in_branch:
        yield from _check(node)
    for child in ast.iter_child_nodes(node):
        yield from _visit(child, in_branch=in_branch)


def _check(node: ast.AST) -> Iterator[tuple[int, str]]:
    line = getattr(node, "lineno", 0)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        why = POSIX_ATTRIBUTES.get(node.value.id, {}).get(node.attr)
        if why:
            yield line, f"{node.value.id}.{node.attr} is POSIX-only ({why})"
    elif isinstance(node, ast.Import | ast.ImportFrom):
        imported = (node.module or "") if isinstance(node, ast.ImportFrom) else None
        for name in [imported] if imported is not None else [a.name for a in node.names]:
            if name.split(".")[0] in POSIX_MODULES:
                yield line, f"{name} is a POSIX-only module"
    elif isinstance(node, ast.Call):
        for keyword in node.keywords:
            why = POSIX_KEYWORDS.get(keyword.arg or "")
            if why and (keyword.arg in PROCESS_KEYWORDS or _is_subprocess(node.func)):
                yield line, f"{keyword.arg}= is POSIX-only ({why})"


def _is_subprocess(func: ast.expr) -> bool:
    """`subprocess.run(...)` and the like (`user=` on another call is someone else's)."""
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "subprocess"
    )


def python_files(root: Path, checked: Iterable[str] = CHECKED) -> Iterator[Path]:
    for name in checked:
        path = root / name
        if path.is_dir():
            yield from sorted(path.rglob("*.py"))
        elif path.is_file():
            yield path


def problems(root: Path = ROOT, checked: Sequence[str] = CHECKED) -> list[str]:
    """`path:line: sentence` for every POSIX-only use outside a platform branch."""
    found = []
    for path in python_files(root, checked):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        relative = path.relative_to(root).as_posix()
        found += [f"{relative}:{line}: {why}" for line, why in violations(tree)]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    root = Path(argv[0]) if argv else Path.cwd()
    found = problems(root)
    for problem in found:
        print(problem, file=sys.stderr)
    if found:
        print(
            f"{len(found)} POSIX-only use(s) outside a platform branch: Windows' CI leg would "
            'fail there; put each in an `if sys.platform != "win32":` branch (with the '
            "Windows way in its else) or use the portable call named above.",
            file=sys.stderr,
        )
        return 1
    print(f"platform rules: no POSIX-only call outside a platform branch in {', '.join(CHECKED)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
