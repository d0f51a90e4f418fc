"""How many more visits a noisy search needs: its uncertainty over what a visit tells. Pure.

"step 1 of about 15" in a hunt that took 8 is worse than no estimate. The
remaining entropy of the posterior (bits) is divided by the bits a visit has
told so far in this hunt, starting from what a reliable repro's hunts tell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["StepEstimate", "entropy_bits"]

_MIN_BITS = 0.05  # a visit tells at least this much: the estimate stays finite
# Bits per visit expected before any is measured (a reliable repro's hunts tell ~0.4),
# weighed as this many visits.
_PRIOR_BITS, _PRIOR_VISITS = 0.4, 3.0


def entropy_bits(probs: Sequence[float], sizes: Sequence[int]) -> float:
    """Entropy of a posterior over cells of `sizes` commits each (mass spread evenly)."""
    return -sum(w * math.log2(w / size) for w, size in zip(probs, sizes, strict=True) if w > 0)


class StepEstimate:
    """Visits told so far, and the entropy when the search began."""

    def __init__(self) -> None:
        self._visits = 0
        self._start: float | None = None

    def visited(self, entropy_before: float) -> None:
        if self._start is None:
            self._start = entropy_before
        self._visits += 1

    def visits_left(self, entropy: float) -> int:
        """Visits expected until the posterior is settled (at least 1)."""
        told = max(0.0, self._start - entropy) if self._start is not None else 0.0
        per_visit = (told + _PRIOR_BITS * _PRIOR_VISITS) / (self._visits + _PRIOR_VISITS)
        return max(1, math.ceil(entropy / max(_MIN_BITS, per_visit)))
