"""Revision -> runnable interpreter: CPython's build knowledge, the builder, the build cache."""
