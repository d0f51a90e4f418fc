"""One hunt end to end: options, the loop over search, build and judge, its saved state.

Also `compare` (two revisions, many repros). Knows every lower layer; formats nothing.
"""
