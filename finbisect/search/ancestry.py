"""Ancestor sets as bitsets, and a straight line's, made on demand. Pure.

`CandidateGraph.ancestors[i]` is the set of candidates that are ancestors of
candidate i (itself included), bit j for candidate j. Stored, that is N²/2
bits for a linear history: 625 MB at 100,000 commits, and as many big-int
operations to build. On a straight line the set is candidates 0..i, so
`LinearAncestors` computes it when asked and the searches, told the graph is
linear, compare indices instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

__all__ = ["LinearAncestors", "bits", "interval", "is_linear"]


class LinearAncestors(Sequence[int]):
    """The ancestor sets of a line of `n` candidates: item i is candidates 0..i."""

    __slots__ = ("_n",)

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[int, ...]: ...

    def __getitem__(self, index: int | slice) -> int | tuple[int, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("candidate index out of range")
        return (1 << (index + 1)) - 1

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LinearAncestors):
            return self._n == other._n
        if isinstance(other, Sequence):
            return len(other) == self._n and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash((LinearAncestors, self._n))

    def __repr__(self) -> str:
        return f"LinearAncestors({self._n})"


def is_linear(ancestors: Sequence[int]) -> bool:
    """Is every candidate the child of the one before it (no merges)?"""
    if isinstance(ancestors, LinearAncestors):
        return True
    return all(a == (1 << (i + 1)) - 1 for i, a in enumerate(ancestors))


def interval(lo: int, hi: int) -> int:
    """The bitset of candidates lo..hi (empty when hi < lo)."""
    return ((1 << (hi + 1)) - 1) ^ ((1 << lo) - 1) if hi >= lo else 0


def bits(mask: int) -> list[int]:
    """The indices of the set bits of `mask`, lowest first.

    Through the binary string: O(bits) in C, then one Python step per set bit (taking
    the lowest bit off a 100,000-bit mask again and again copies it each time)."""
    if mask < 0:
        raise ValueError("a bitset is not negative")
    text = bin(mask)[:1:-1]  # lowest bit first, without the "0b"
    out = []
    at = text.find("1")
    while at >= 0:
        out.append(at)
        at = text.find("1", at + 1)
    return out
