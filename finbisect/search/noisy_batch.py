"""The noisy searches' rounds: their next request and more to visit with it. Pure.

`noisy_batch` is `next_batch` for NoisyBisection and RateChangeBisection (and,
through them, AutoBisection): the search's own next request first, then, in
the search proper, revisions added greedily by bits about the culprit per
second of the round (multisection.plan_batch). A round that visits an end
(calibration, the clean end's check, the two-sided search's rate runs) visits
only that end: the workers left idle may share its runs.

The revisions weighed: the unbuilt ones next to a grid of bug-side masses (on
a merge history, the one nearest each mass), and every informative built one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from finbisect.search.multisection import BatchCandidate, Channel, plan_batch
from finbisect.search.posterior import Snapshot
from finbisect.search.strategy import OLD_END, SearchRequest

if TYPE_CHECKING:
    from finbisect.search.noisy import NoisyBisection

__all__ = ["Quiet", "beta_quiet", "noisy_batch"]

_EPS = 1e-12

# (posterior, longest) -> P(no symptom in j runs), j = 0..longest, on the clean and bug sides
Quiet = Callable[[Snapshot, int], tuple[list[float], list[float]]]


def beta_quiet(a: float, b: float, longest: int) -> list[float]:
    """E[(1 - p)^j] for p ~ Beta(a, b), j = 0..longest."""
    out = [1.0]
    for j in range(longest):
        out.append(out[-1] * (b + j) / (a + b + j))
    return out


def _targets(limit: int) -> list[float]:
    """Bug-side masses to look for unbuilt revisions at: finer for bigger rounds."""
    steps = max(10, 2 * limit + 2)
    return [j / steps for j in range(1, steps)]


def _nearest(search: NoisyBisection, post: Snapshot, xs: Sequence[int], limit: int) -> set[int]:
    """On a merge history every unbuilt revision is an option: keep the nearest to each mass."""
    masses = {x: search._model.bug_mass(post, x) for x in xs}
    return {min(xs, key=lambda x: abs(masses[x] - t)) for t in _targets(limit)} if xs else set()


def noisy_batch(
    search: NoisyBisection, limit: int, *, batches: Sequence[int], quiet: Quiet | None = None
) -> tuple[SearchRequest, ...]:
    """Up to `limit` requests for one round (module docstring); `batches`: the run counts
    the search's visits may take, `quiet`: its chance of no symptom on each side (default:
    one-sided, the clean side never shows it)."""
    first = search.next_request()
    if first is None or limit <= 1 or first.index in (search.bug_end, search.clean_end):
        return () if first is None else (first,)
    post = search._model.snapshot()
    budget = search.max_runs - search._runs
    longest = max(1, min(budget, batches[-1]))
    if quiet is None:
        clean, bug = [1.0] * (longest + 1), search._model.no_symptom(post, longest)
    else:
        clean, bug = quiet(post, longest)
    channel = Channel(
        clean_quiet=tuple(clean),
        bug_quiet=tuple(bug),
        batches=tuple(b for b in batches if b <= longest) or (longest,),
        run_seconds=search.run_seconds,
        visit_seconds=search.visit_seconds,
    )
    fresh = search._fresh_options(post, _targets(limit))
    if not search._model.linear:
        fresh = _nearest(search, post, sorted(fresh), limit)
    built = {x for x in search._built if x != OLD_END and not search._skipped >> x & 1}

    def candidate(x: int) -> BatchCandidate:
        build = 0.0 if x in search._built else search.build_seconds
        return BatchCandidate(
            index=x,
            bug_mass=search._model.bug_mass(post, x),
            fixed_seconds=search.visit_seconds + build,
            max_runs=search.max_runs_per_revision - sum(search._stats(x)),
        )

    options = [candidate(x) for x in sorted(fresh | built) if x != first.index]
    options = [c for c in options if _EPS < c.bug_mass < 1.0 - _EPS]
    chosen = plan_batch(
        candidate(first.index), first.runs, options, channel, limit=limit, budget=budget
    )
    return tuple(SearchRequest(index, runs) for index, runs in chosen)
