"""The gradient-health verdict: of one first-to-last ratio, and of a whole run (no torch
needed, so tools that read recorded ratios, such as the run report, use the tracker's words)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

# First layer's gradient norm over the last layer's: below VANISHING the input layers barely
# learn (the 100x the demo teaches), above EXPLODING they swamp the rest.
VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2
# How a run ended: its last this many checked logging steps.
ENDING = 5


def gradient_health(ratio: float) -> str:
    """ "vanishing", "exploding", "healthy" or "nonfinite" for a first-to-last ratio."""
    if math.isnan(ratio):
        return "nonfinite"
    if ratio < VANISHING_RATIO:
        return "vanishing"
    if ratio > EXPLODING_RATIO:
        return "exploding"
    return "healthy"


@dataclass
class Verdict:
    """One model's health over a run: each checked logging step's word, and when each problem
    was first and last seen. The run's word is how it ended, so an early dip that recovered
    is reported as seen, not as the verdict."""

    ending: list[tuple[str, float]] = field(default_factory=list)  # the last ENDING checks
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # problem: first, last step

    def check(self, step: int, ratio: float, *, nonfinite: bool = False) -> str | None:
        """Record one logging step; the problem when it shows for the first time."""
        word = "nonfinite" if nonfinite else gradient_health(ratio)
        self.ending = [*self.ending[-(ENDING - 1) :], (word, ratio)]
        if word == "healthy":
            return None
        first = word not in self.seen
        self.seen[word] = (self.seen.get(word, (step, step))[0], step)
        return word if first else None

    @property
    def ratio(self) -> float | None:
        """The first-to-last ratio the run ended with: the median of its last checks."""
        finite = [ratio for word, ratio in self.ending if word != "nonfinite"]
        return statistics.median(finite) if finite else None

    @property
    def health(self) -> str:
        """One word: "unchecked" when no logging step compared two layers (a run shorter than
        log_every, a model of one layer), never a "healthy" that no check found."""
        if not self.ending:
            return "unchecked"
        if any(word == "nonfinite" for word, _ in self.ending):
            return "nonfinite"
        ratio = self.ratio
        return "nonfinite" if ratio is None else gradient_health(ratio)

    def summary(self, prefix: str) -> dict[str, object]:
        """`<prefix>health`, `<prefix>first_to_last` and each problem's first and last step."""
        result: dict[str, object] = {f"{prefix}health": self.health}
        if self.ratio is not None:
            result[f"{prefix}first_to_last"] = self.ratio
        for word, (first, last) in self.seen.items():
            result |= {f"{prefix}{word}/first_step": first, f"{prefix}{word}/last_step": last}
        return result
