"""Seeds: one converter for every ``random_state`` argument and fixed-key child streams.

Child streams are named by fixed integer keys below a root :class:`numpy.random.SeedSequence`
rather than spawned, because spawning mutates the caller's SeedSequence and makes the streams
depend on how many were spawned before.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .validation import ArgumentError


def as_seed_sequence(random_state: Any, name: str = "random_state", *,
                     allow_none: bool = True) -> np.random.SeedSequence:
    """``random_state`` as a SeedSequence.

    Parameters
    ----------
    random_state : None, int >= 0, numpy.random.SeedSequence or numpy.random.Generator
        None draws fresh entropy (refused when ``allow_none`` is False); an int seeds a new
        SeedSequence; a SeedSequence is returned as it is; a Generator contributes four 63-bit
        draws as the entropy (it advances by those draws).
    name : str
        Argument name used in the error message.
    allow_none : bool
        Whether None is accepted (False where a fixed seed is required).

    Returns
    -------
    numpy.random.SeedSequence
    """
    if random_state is None and allow_none:
        return np.random.SeedSequence()
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(random_state.integers(0, 2**63, size=4).tolist())
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool) \
            and random_state >= 0:
        return np.random.SeedSequence(int(random_state))
    accepted = "None, a non-negative int" if allow_none else "a non-negative int"
    raise ArgumentError(name, f"expected {accepted}, a numpy SeedSequence or a numpy Generator, "
                              f"got {random_state!r}")


def child_seed(root: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    """An independent stream of ``root`` named by fixed keys (``root`` is not mutated)."""
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + keys,
                                  pool_size=root.pool_size)


def child_rng(root: np.random.SeedSequence, *keys: int) -> np.random.Generator:
    """A generator on the fixed-key child stream ``keys`` of ``root`` (``root`` is not mutated)."""
    return np.random.default_rng(child_seed(root, *keys))


def int_seeds(root: np.random.SeedSequence, n: int) -> list[int]:
    """``n`` 32-bit integer seeds from ``root`` (for estimators that take an int ``random_state``)."""
    return [int(s) for s in root.generate_state(n)]
