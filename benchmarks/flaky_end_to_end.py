"""End-to-end accuracy of the default (noisy) search on unseen flaky histories.

Real builds and real runs: for each hunt, a fresh minipy history (random
length 50-200, crash rate 0.2-0.5, a few unbuildable revisions, an unrelated
crash) is bisected with `finbisect run --match ... --json` and no --runs.
Prints how often the named culprit was right, how often the hunt said it
could not reach the confidence (exit 5) instead, and the mean cost, against
the classic `--runs 5` search ("naive": 5 runs per revision) on the same
histories in the same run.

    .venv/bin/python benchmarks/flaky_end_to_end.py --hunts 20 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from finbisect.testing.histories import linear_history

REPRO = "import threading\nthreading.Thread(target=lambda: None, daemon=True).start()\n"
MATCH = r"pthread_mutex_destroy\(gil_mutex\) failed"


def hunt(
    work: Path, repo: Path, good: str, bad: str, extra: list[str]
) -> tuple[int, dict[str, Any]]:
    out = work / "out.json"
    out.unlink(missing_ok=True)
    exe = Path(sys.executable).parent / "finbisect"
    done = subprocess.run(
        [str(exe), "run", str(work / "repro.py"), "--repo", str(repo), "--good", good,
         "--bad", bad, "--build-cmd", "make", "--match", MATCH, "--cache-dir",
         str(work / "cache"), "--json", str(out), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    data = json.loads(out.read_text()) if out.is_file() else {}
    return done.returncode, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hunts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    tallies = {
        "noisy": [0, 0, 0, 0, 0],
        "naive k=5": [0, 0, 0, 0, 0],
    }  # right, wrong, exit5, runs, builds
    for i in range(args.hunts):
        commits = rng.randint(50, 200)
        culprit = rng.randint(2, commits - 3)
        percent = rng.randint(20, 50)
        broken = set(rng.sample(range(1, commits - 1), 3)) - {culprit}
        unrelated = {rng.randint(1, commits - 2)} - broken - {culprit}
        with tempfile.TemporaryDirectory(prefix="finbisect-e2e-") as tmp:
            work = Path(tmp)
            (work / "repro.py").write_text(REPRO)
            history = linear_history(
                work / "repo", commits=commits, culprit=culprit, crash_percent=percent,
                broken=broken, unrelated=unrelated,
            )  # fmt: skip
            for name, extra in (("noisy", []), ("naive k=5", ["--runs", "5"])):
                code, data = hunt(work, history.path, history.good, history.bad, extra)
                tally = tallies[name]
                culprit_sha = (data.get("culprit") or {}).get("sha")
                if code == 5:
                    tally[2] += 1
                elif culprit_sha == history.culprit:
                    tally[0] += 1
                else:
                    tally[1] += 1
                tally[3] += data.get("runs", 0)
                tally[4] += len(data.get("steps", []))
                verdict = (
                    "right" if culprit_sha == history.culprit else "WRONG" if code == 0 else "-"
                )
                print(
                    f"hunt {i + 1:2d} N={commits:3d} p={percent / 100:.2f} {name:9s}: exit {code}, "
                    f"{verdict}"
                    f" conf={data.get('confidence', 0):.3f} runs={data.get('runs')} "
                    f"revisions={len(data.get('steps', []))}",
                    flush=True,
                )
    print()
    header = ["right", "wrong", "exit 5", "runs/hunt", "revisions/hunt"]
    print(f"{'search':10s} " + " ".join(f"{h:>14s}" for h in header))
    for name, (right, wrong, inconclusive, runs, builds) in tallies.items():
        n = args.hunts
        cells = [str(right), str(wrong), str(inconclusive), f"{runs / n:.1f}", f"{builds / n:.1f}"]
        print(f"{name:10s} " + " ".join(f"{c:>14s}" for c in cells))


if __name__ == "__main__":
    main()
