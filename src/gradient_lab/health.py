"""The gradient-health verdict of a first-to-last layer gradient-norm ratio (no torch needed,
so tools that read recorded ratios, such as the run report, use the tracker's own words)."""

from __future__ import annotations

import math

# First layer's gradient norm over the last layer's: below VANISHING the input layers barely
# learn (the 100x the demo teaches), above EXPLODING they swamp the rest.
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


def gradient_health(ratio: float) -> str:
    """ "vanishing", "exploding" or "healthy" for a first-to-last layer gradient-norm ratio."""
    if math.isnan(ratio):
        return "nonfinite"
    if ratio < VANISHING_RATIO:
        return "vanishing"
    if ratio > EXPLODING_RATIO:
        return "exploding"
    return "healthy"
