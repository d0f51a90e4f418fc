"""What visits cost, as measured: the searches weigh expected bits against these seconds."""

from __future__ import annotations

from collections.abc import Iterable

from finbisect.search.strategy import Costs

__all__ = ["CostHooks", "MeasuredCosts"]


class MeasuredCosts:
    """Running means of a hunt's build and run seconds, the defaults until measured.

    Runs that show the symptom are timed apart from the others: a hung run waits for
    the deadlock grace (or the whole timeout) while a clean one exits at once, so a
    search may prefer a revision whose runs will probably be clean.
    """

    def __init__(self, defaults: Costs) -> None:
        self.build_seconds = defaults.build_seconds
        self.run_seconds = defaults.run_seconds
        self._builds = (0.0, 0)  # (seconds, count)
        self._runs = (0.0, 0)
        self._symptom_runs = (0.0, 0)

    def record(
        self,
        *,
        build_seconds: float | None,
        run_seconds: float,
        runs: int,
        symptom_runs: int = 0,
        symptom_seconds: float = 0.0,
    ) -> None:
        if build_seconds is not None:
            self._builds = _add(self._builds, build_seconds, 1)
            self.build_seconds = self._builds[0] / self._builds[1]
        if runs > 0:
            self._runs = _add(self._runs, run_seconds, runs)
            self.run_seconds = self._runs[0] / self._runs[1]
            self._symptom_runs = _add(self._symptom_runs, symptom_seconds, symptom_runs)

    def run_costs(self) -> tuple[float, float]:
        """(seconds of a run that shows the symptom, of one that does not); the mean of
        all runs for a kind not measured yet."""
        seconds, runs = self._runs
        symptom_seconds, symptom_runs = self._symptom_runs
        symptom = symptom_seconds / symptom_runs if symptom_runs else self.run_seconds
        clean_runs = runs - symptom_runs
        clean = (seconds - symptom_seconds) / clean_runs if clean_runs > 0 else self.run_seconds
        return symptom, max(clean, 0.0)


def _add(total: tuple[float, int], seconds: float, count: int) -> tuple[float, int]:
    return total[0] + seconds, total[1] + count


class CostHooks:
    """The noisy searches' cost hooks (Search.record_costs, mark_built): what is built
    and what a visit costs, the defaults until measured."""

    def __init__(self, costs: Costs) -> None:
        self._built: set[int] = set()
        self._measured = MeasuredCosts(costs)
        self.visit_seconds = costs.visit_seconds

    @property
    def build_seconds(self) -> float:
        return self._measured.build_seconds

    @property
    def run_seconds(self) -> float:
        return self._measured.run_seconds

    def record_costs(
        self,
        index: int,
        *,
        build_seconds: float | None,
        run_seconds: float,
        runs: int,
        symptom_runs: int = 0,
        symptom_seconds: float = 0.0,
    ) -> None:
        """A visit's measured costs: a fresh build's seconds (None if cached), total run
        time, and how many of the runs showed the symptom, in how many seconds."""
        self._built.add(index)
        self._measured.record(
            build_seconds=build_seconds, run_seconds=run_seconds, runs=runs,
            symptom_runs=symptom_runs, symptom_seconds=symptom_seconds,
        )  # fmt: skip

    def run_costs(self) -> tuple[float, float]:
        """(seconds of a symptom run, of a clean run), as measured."""
        return self._measured.run_costs()

    def mark_built(self, indices: Iterable[int]) -> None:
        """Revisions whose interpreter is already built (a visit costs no build)."""
        self._built.update(indices)
