"""rate_change.py's naive-k baseline: git bisect with k runs per revision.

A revision is on the bug side iff at least `oracle_threshold(k, p0, p1)` of its
k runs show the symptom: the count that best separates p0 from p1, which needs
both rates known in advance (an oracle no real hunt has). rate_change.py's
calibrate_naive picks the smallest k reaching the confidence as accuracy.
"""

from __future__ import annotations

import math

from rate_hunts import Hunt, Task, simulate

from finbisect.search.strategy import CandidateGraph, ClassicBisection


class ThresholdBisection(ClassicBisection):
    """git bisect with k runs per revision: bug side iff at least `threshold` symptoms."""

    def __init__(self, graph: CandidateGraph, *, runs: int, threshold: int) -> None:
        super().__init__(graph, runs=runs, bug_is_new=True, verify=False)
        self.threshold = threshold

    def record(self, index: int, *, symptoms: int, clean: int) -> None:
        bug = symptoms >= self.threshold
        super().record(index, symptoms=int(bug), clean=int(not bug))


def oracle_threshold(k: int, p0: float, p1: float) -> int:
    """The symptom count from which k runs are likelier on the bug side (rates known)."""
    slope = math.log(p1 * (1 - p0) / (p0 * (1 - p1)))
    return max(1, math.ceil(k * math.log((1 - p0) / (1 - p1)) / slope))


def run_naive(task: Task, seed: int, k: int) -> Hunt:
    graph = CandidateGraph.linear(task.n)
    search = ThresholdBisection(graph, runs=k, threshold=oracle_threshold(k, task.p0, task.p1))
    stats = simulate(task, seed, search, graph)
    return Hunt(
        named=True,
        correct=stats.correct,
        confidence=1.0,
        runs=stats.search_runs,
        builds=stats.builds,
    )
