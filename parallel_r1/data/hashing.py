"""A seeded hash that is the same in every process: deterministic tie-breaks and RNG seeds."""

from __future__ import annotations

import hashlib


def stable_hash(seed: int, *parts: object) -> int:
    """A seeded 64-bit hash of `parts`, stable across processes (unlike `hash()`): tie-breaks and RNG seeds."""
    text = "\x1f".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
