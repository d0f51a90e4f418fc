"""`python -m finbisect` is the `finbisect` command."""

from finbisect.cli import main

main()
