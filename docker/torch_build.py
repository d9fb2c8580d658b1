"""The torch build an image holds (TORCH_VARIANT: cpu, cu128, ...), checked at both ends of its
install; each stops the build with one sentence that `nox -s build-image` shows as its own.

`source` prints pip's option for torch: a torch wheel in the wheelhouse must be that build;
without one, TORCH_INDEX_URL is probed once rather than pip retrying it for every package.
`check` makes sure that the venv's torch is that build (PyPI's Linux torch is a CUDA build).
"""

import os
import sys
import urllib.request
from pathlib import Path

VARIANT = os.environ.get("TORCH_VARIANT", "cpu")


def fail(message: str) -> None:
    sys.exit(f"build-image: {message}")


def source() -> str:
    wheels = sorted(Path("/inputs/wheels").glob("torch-*.whl"))
    if wheels:
        # torch-2.13.0+cpu-cp311-...whl: the build follows the "+" (none: PyPI's own build).
        build = wheels[-1].name.split("-")[1].partition("+")[2]
        if (build or "pypi") != VARIANT:
            fail(
                f"the wheelhouse holds {wheels[-1].name}, a {build or 'PyPI'} build of torch, "
                f"not the {VARIANT} build asked for: put the {VARIANT} torch wheel there or "
                "build without the wheelhouse."
            )
        return ""
    index = os.environ.get("TORCH_INDEX_URL", "")
    try:
        if index:
            urllib.request.urlopen(index.rstrip("/") + "/torch/", timeout=20).close()
    except Exception as error:  # refused, timed out, TLS, HTTP: no torch from there
        print(f"{index}: {error}", file=sys.stderr)
        fail(
            f"PyTorch's wheel index {index} cannot be reached from the build, so no {VARIANT} "
            "torch can be had: allow that host, set TORCH_INDEX_URL to a mirror, or give a "
            f"wheelhouse holding the {VARIANT} torch wheel."
        )
    return f"--extra-index-url={index}" if index else ""


def check() -> None:
    import torch  # noqa: PLC0415 - only the venv's Python has it, not the one that runs `source`

    cuda = None if VARIANT == "cpu" else f"{VARIANT[2:-1]}.{VARIANT[-1]}"
    if torch.version.cuda != cuda:
        fail(
            f"pip installed torch {torch.__version__} (CUDA {torch.version.cuda}), "
            f"not the {VARIANT} build asked for."
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["source"]:
        print(source())
    else:
        check()
