"""k-way multisection: several revisions to visit at once, one per worker (issue #12). Pure.

With W workers the hunt loop asks a search for `next_batch(W)`: up to W
requests at distinct revisions, visited together in one round, all recorded
before the next question. The searches choose their batch with the helpers
here:

- git bisect's search (`split_points`): the revisions that cut the culprits
  still possible into W + 1 parts as even as the testable revisions allow. On
  a linear history these are quantiles of the possible range; across merges,
  points are added one at a time, then each moved in turn, to minimise the
  expected number of culprits left (the sum of the squared part sizes).
- the noisy searches (`plan_batch`): the search's own next request first, then
  points added one at a time, each the one that most raises the batch's
  expected bits about the culprit per second of the round (a round lasts as
  long as its slowest visit). Each added point takes the most runs that fit in
  the round, up to the runs it would take alone (the searches' rule: most bits
  per second once built), so each revision spends the run budget as it would
  alone; a point that needs a build may stretch the round when nothing
  faster tells as much. A point is added only if it brings at least a quarter of
  the first request's bits per run: otherwise the batch would spend the run
  budget on points that tell little (simulated, a bigger batch then named a
  culprit less often: the budget ran out).

The batch's bits are I(culprit; L), L the first revision of the batch, taken
in order of growing bug-side mass, whose runs showed the symptom. Under
one-sided noise that is all the batch says about the culprit (the revisions
after L are on the bug side whatever the culprit), so it is exact for given
chances of a symptom at each revision (p's uncertainty, which ties the
revisions' runs together, is left out); under two-sided noise it is a lower bound.
The bug sides are taken as nested, which they are on a linear history; across
merges this is an approximation.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from finbisect.search.ancestry import bits, interval, is_linear

__all__ = [
    "BatchCandidate",
    "Channel",
    "first_symptom_information",
    "is_linear",
    "plan_batch",
    "split_points",
]

_EPS = 1e-9
# An added revision must bring at least this share of the bits per run of the search's
# own request: the rest of a round's workers idle (or share runs) rather than spend the
# run budget on revisions that tell little (0.5 gained fewer rounds, none spent more runs).
_THRIFT = 0.25


# -- git bisect's search --------------------------------------------------------------
def split_points(ancestors: Sequence[int], possible: int, skipped: int, limit: int) -> list[int]:
    """Up to `limit` distinct testable revisions that cut `possible` (a bitset of
    candidates) most evenly, in increasing index order; none when no testable
    revision (not in `skipped`) tells anything."""
    if limit < 1 or possible.bit_count() < 2:
        return []
    if is_linear(ancestors):
        return _linear_split(possible, skipped, limit)
    return _graph_split(ancestors, possible, skipped, limit)


def _linear_split(possible: int, skipped: int, limit: int) -> list[int]:
    lo = (possible & -possible).bit_length() - 1
    hi = possible.bit_length() - 1  # on a line the possible culprits are lo..hi
    usable = bits(interval(lo, hi - 1) & ~skipped)  # hi itself tells nothing
    n = hi - lo + 1
    k = min(limit, len(usable))
    chosen: set[int] = set()
    for j in range(1, k + 1):
        target = lo + round(j * n / (k + 1)) - 1  # testing i leaves i - lo + 1 below
        at = bisect.bisect_left(usable, target)
        near = sorted(
            (u for u in usable[max(0, at - k - 1) : at + k + 1] if u not in chosen),
            key=lambda u: (abs(u - target), u),
        )
        if near:
            chosen.add(near[0])
    return sorted(chosen)


def _parts(ancestors: Sequence[int], possible: int, points: Sequence[int]) -> list[int]:
    parts = [possible]
    for x in points:
        anc = ancestors[x]
        parts = [half for part in parts for half in (part & anc, part & ~anc) if half]
    return parts


def _spread(parts: list[int]) -> int:
    return sum(part.bit_count() ** 2 for part in parts)


def _graph_split(ancestors: Sequence[int], possible: int, skipped: int, limit: int) -> list[int]:
    total = possible.bit_count()
    usable = [
        i
        for i, anc in enumerate(ancestors)
        if not skipped >> i & 1 and 0 < (anc & possible).bit_count() < total
    ]
    chosen: list[int] = []
    while len(chosen) < limit:
        score, best = min(
            (
                (_spread(_parts(ancestors, possible, [*chosen, x])), x)
                for x in usable
                if x not in chosen
            ),
            default=(0, -1),
        )
        if best < 0 or score >= _spread(_parts(ancestors, possible, chosen)):
            break
        chosen.append(best)
    for _ in range(2):  # move each point in turn to its best place given the others
        for slot in range(len(chosen)):
            others = chosen[:slot] + chosen[slot + 1 :]
            _, chosen[slot] = min(
                (_spread(_parts(ancestors, possible, [*others, x])), x)
                for x in usable
                if x not in others
            )
    return sorted(chosen)


# -- the noisy searches ---------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class BatchCandidate:
    """A revision the batch may add: what its visit costs before any run, how many runs
    it may still take, and the posterior mass of the culprits that put it on the bug side."""

    index: int
    bug_mass: float
    fixed_seconds: float  # visit, plus the build unless built
    max_runs: int


@dataclass(frozen=True, kw_only=True)
class Channel:
    """P(no symptom in j runs) on each side, j = 0..len - 1 (p integrated out), and a run's cost."""

    clean_quiet: tuple[float, ...]
    bug_quiet: tuple[float, ...]
    batches: tuple[int, ...]  # run counts a visit may take, ascending
    run_seconds: float
    visit_seconds: float

    def own_batch(self, bug_mass: float) -> int:
        """The runs a visit alone would take: most bits per second once built (as the
        searches choose a visit's runs), so a batch spends no more of the run budget."""
        return max(
            self.batches,
            key=lambda b: (
                first_symptom_information([(bug_mass, *self.hits(b))])
                / (self.visit_seconds + b * self.run_seconds)
            ),
        )

    def hits(self, runs: int) -> tuple[float, float]:
        """(P(any symptom | clean side), P(any symptom | bug side)) for `runs` runs."""
        j = min(runs, len(self.bug_quiet) - 1)
        return 1.0 - self.clean_quiet[j], 1.0 - self.bug_quiet[j]


def first_symptom_information(points: Sequence[tuple[float, float, float]]) -> float:
    """I(culprit; first symptom) in bits for (bug mass, clean hit, bug hit) per revision."""
    ordered = sorted(points)
    k = len(ordered)
    regions, below = [], 0.0  # region j: the culprits that put revisions j.. on the bug side
    for m, _, _ in ordered:
        regions.append(max(0.0, m - below))
        below = max(below, m)
    regions.append(max(0.0, 1.0 - below))
    mixed = [0.0] * (k + 1)  # P(L = l), l = k: no symptom anywhere
    conditional = 0.0
    for j, r in enumerate(regions):
        if r <= 0.0:
            continue
        quiet = 1.0
        for i, (_, t0, t1) in enumerate(ordered):
            hit = quiet * (t1 if i >= j else t0)
            quiet -= hit
            mixed[i] += r * hit
            if hit > 0.0:
                conditional -= r * hit * math.log2(hit)
        mixed[k] += r * quiet
        if quiet > 0.0:
            conditional -= r * quiet * math.log2(quiet)
    return -sum(q * math.log2(q) for q in mixed if q > 0.0) - conditional


def plan_batch(
    first: BatchCandidate,
    first_runs: int,
    candidates: Sequence[BatchCandidate],
    channel: Channel,
    *,
    limit: int,
    budget: int,
) -> list[tuple[int, int]]:
    """(index, runs) of `first` with `first_runs`, then of up to `limit` - 1 more
    candidates chosen greedily (module docstring); `budget`: runs the whole batch may take."""
    run = channel.run_seconds
    chosen: list[tuple[BatchCandidate, int]] = [(first, first_runs)]
    seconds = first.fixed_seconds + first_runs * run
    left = budget - first_runs

    def triple(candidate: BatchCandidate, runs: int) -> tuple[float, float, float]:
        return (candidate.bug_mass, *channel.hits(runs))

    points = [triple(first, first_runs)]
    bits_now = first_symptom_information(points)
    floor = _THRIFT * bits_now / max(1, first_runs)  # bits per run an added point must bring
    own = {c.index: channel.own_batch(c.bug_mass) for c in candidates}
    taken = {first.index}
    while len(chosen) < limit and left > 0:
        best: tuple[float, float, float, BatchCandidate, int] | None = None
        for candidate in candidates:
            if candidate.index in taken:
                continue
            alone = own[candidate.index]
            room = math.floor((seconds - candidate.fixed_seconds) / run + _EPS)
            fits = [b for b in channel.batches if b <= min(room, alone)]
            for runs in {min(b, candidate.max_runs, left) for b in (alone, *fits[-1:])}:
                if runs < 1:
                    continue
                after = max(seconds, candidate.fixed_seconds + runs * run)
                gained = first_symptom_information([*points, triple(candidate, runs)])
                if gained - bits_now < floor * runs or gained - bits_now <= _EPS:
                    continue
                if best is None or gained / after > best[0]:
                    best = (gained / after, gained, after, candidate, runs)
        if best is None:
            break
        _, bits_now, seconds, candidate, runs = best
        chosen.append((candidate, runs))
        points.append(triple(candidate, runs))
        taken.add(candidate.index)
        left -= runs
    return [(c.index, runs) for c, runs in chosen]
