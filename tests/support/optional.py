"""Parts of a machine that some tests need and a fresh one may lack (an emoji font, a Docker
engine, a reachable package index). Where one is missing the test skips, with one sentence
naming the part and how to get it. Under CI=true (GitHub's runners, `.ci/run`), which install
every part, the same sentence fails the test instead: a gate never passes by skipping."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(sentence: str) -> NoReturn:
    """The part this test needs is not here: `sentence` says which and how to get it."""
    __tracebackhide__ = True  # reported at the test's line, not this one
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{sentence} (CI=true: CI installs it, so this test may not skip)", False)
    pytest.skip(sentence)
