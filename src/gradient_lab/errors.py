"""The library's one exception type."""

from __future__ import annotations


class TrackingError(Exception):
    """A tracked run cannot start or log; the message is one sentence saying why and what to do."""
