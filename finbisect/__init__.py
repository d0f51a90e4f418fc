"""finbisect: find the CPython commit that introduced or fixed a crash or hang at exit."""

__all__ = ["__version__"]

__version__ = "0.1.0"
