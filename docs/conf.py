"""Sphinx settings for `nox -s docs`: the pages are Markdown (MyST), the reference comes from
the library's docstrings, and any warning fails the build (`-W`, `nitpicky`), so a broken link
or a missing reference is an error."""

from __future__ import annotations

project = "gradient-lab"
author = "gradient-lab contributors"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Links to a heading (`page.md#a-heading`) are checked too.
myst_heading_anchors = 3
nitpicky = True
# Types that annotations name but that no page documents (torch's, the standard library's,
# the library's internals): a reference to the library's public names must still resolve.
nitpick_ignore_regex = [("py:class", r"(?!gradient_lab\.).*")]
autodoc_typehints = "description"
html_theme = "alabaster"
