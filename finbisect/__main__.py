"""`python -m finbisect` is the `finbisect` command."""

from finbisect.cli.app import main

main()
