"""Which revision to test next and when the answer is known. Pure: no I/O, no clock.

Everything here is driven by recorded symptom and clean run counts, so it can be
simulated exhaustively (finbisect.testing.simulate) and unit-tested with tables.
"""
