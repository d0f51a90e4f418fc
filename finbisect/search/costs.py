"""What visits cost, as measured: the searches weigh expected bits against these seconds."""

from __future__ import annotations

from collections.abc import Iterable

from finbisect.search.strategy import Costs, VisitCost

__all__ = ["CostHooks"]


class CostHooks:
    """The noisy searches' cost hooks (Search.record_costs, mark_built): what is built,
    and running means of build and run seconds, the defaults until measured.

    Runs that show the symptom are timed apart from the others: a hung run waits for
    the deadlock grace (or the whole timeout) while a clean one exits at once, so a
    search may prefer a revision whose runs will probably be clean.
    """

    def __init__(self, costs: Costs) -> None:
        self._built: set[int] = set()
        self.build_seconds = costs.build_seconds
        self.run_seconds = costs.run_seconds
        self.visit_seconds = costs.visit_seconds
        self._build_totals = (0.0, 0)  # (seconds, count)
        self._run_totals = (0.0, 0)
        self._symptom_totals = (0.0, 0)

    def record_costs(self, index: int, cost: VisitCost) -> None:
        """A visit's measured costs."""
        self._built.add(index)
        if cost.build_seconds is not None:
            self._build_totals = _add(self._build_totals, cost.build_seconds, 1)
            self.build_seconds = self._build_totals[0] / self._build_totals[1]
        if cost.runs > 0:
            self._run_totals = _add(self._run_totals, cost.run_seconds, cost.runs)
            self.run_seconds = self._run_totals[0] / self._run_totals[1]
            self._symptom_totals = _add(
                self._symptom_totals, cost.symptom_seconds, cost.symptom_runs
            )

    def run_costs(self) -> tuple[float, float]:
        """(seconds of a run that shows the symptom, of one that does not); the mean of
        all runs for a kind not measured yet."""
        seconds, runs = self._run_totals
        symptom_seconds, symptom_runs = self._symptom_totals
        symptom = symptom_seconds / symptom_runs if symptom_runs else self.run_seconds
        clean_runs = runs - symptom_runs
        clean = (seconds - symptom_seconds) / clean_runs if clean_runs > 0 else self.run_seconds
        return symptom, max(clean, 0.0)

    def mark_built(self, indices: Iterable[int]) -> None:
        """Revisions whose interpreter is already built (a visit costs no build)."""
        self._built.update(indices)


def _add(total: tuple[float, int], seconds: float, count: int) -> tuple[float, int]:
    return total[0] + seconds, total[1] + count
