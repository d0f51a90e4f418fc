"""A built tree as bytes for the network, and back into a build cache.

The build cache keeps a relocatable tree per revision (build/objects.py): the
files running the interpreter needs, laid out as in the build directory. An
artifact is that tree as a gzip-compressed tar; the receiving side stores it
in its own cache (content-addressed again there), so a worker that fetched a
revision's artifact once runs it from its cache afterwards.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from finbisect.build.cache import BuildCache, CachedBuild
from finbisect.build.objects import EVERYTHING

__all__ = ["Artifact", "pack", "unpack"]

_LEVEL = 6  # gzip: most of zstd's ratio on binaries at a fraction of xz's time


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One revision's stored tree, compressed."""

    sha: str
    fingerprint: str
    description: str
    interpreter: str  # relative to the tree
    data: bytes  # tar.gz of the tree

    @property
    def size(self) -> int:
        return len(self.data)


def pack(build: CachedBuild) -> Artifact:
    """The stored tree of a successful cached build, as an artifact."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=_LEVEL) as tar:
        tar.add(build.tree, arcname=".")
    return Artifact(
        sha=build.sha,
        fingerprint=build.fingerprint,
        description=build.description,
        interpreter=build.interpreter,
        data=buffer.getvalue(),
    )


def unpack(artifact: Artifact, cache: BuildCache, scratch: Path) -> CachedBuild:
    """The artifact's build in `cache`: already there, or unpacked and stored now.

    Raises OSError (a full disk) with nothing half-stored.
    """
    cached = cache.lookup(artifact.fingerprint, artifact.sha)
    if cached is not None and cached.ok:
        return cached
    scratch.mkdir(parents=True, exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix=f"unpack-{artifact.sha[:12]}-", dir=scratch))
    try:
        with tarfile.open(fileobj=io.BytesIO(artifact.data), mode="r:gz") as tar:
            tar.extractall(where, filter="data")  # no paths out of `where`, no devices
        return cache.store(
            fingerprint=artifact.fingerprint,
            sha=artifact.sha,
            description=artifact.description,
            interpreter=artifact.interpreter,
            tree=where,
            selection=EVERYTHING,
        )
    finally:
        shutil.rmtree(where, ignore_errors=True)
