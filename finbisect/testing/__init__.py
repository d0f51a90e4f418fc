"""Generated subjects for the demo, the tests and the benchmarks.

minipy (a tiny C program with a generated git history that breaks or fixes its
exit), the demo's story on top of it, and simulated hunts for the searches.
Runtime code never imports this package; only cli (for `finbisect demo`) does.
"""
