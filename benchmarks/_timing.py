"""Small timing helpers shared by the benchmarks: wall time with warm-up, best and median of repeats,
and a plain-text table.

Timings on a shared machine are noisy; compare ratios measured in the same run, and prefer the
best of several repeats (the least disturbed run) to a single measurement.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls, in seconds per call.

    Attributes
    ----------
    best : float
        Fastest repeat (the usual summary on a noisy machine).
    median : float
        Median repeat.
    times : tuple of float
        Every repeat, in order.
    result : object
        The return value of the last call (so a benchmark can check what it timed).
    """

    best: float
    median: float
    times: tuple[float, ...]
    result: Any = None


def measure(fn: Callable[[], Any], *, repeat: int = 5, number: int = 1, warmup: int = 1) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeat`` timings of ``number`` calls each.

    Parameters
    ----------
    fn : callable
        Called with no arguments.
    repeat : int
        Number of timed repeats (at least 1).
    number : int
        Calls per repeat; each repeat's time is divided by ``number`` (use > 1 for calls of a few
        microseconds, where the clock's resolution matters).
    warmup : int
        Untimed calls first (imports, caches, lazy compilation, page faults).

    Returns
    -------
    Timing
    """
    if repeat < 1 or number < 1 or warmup < 0:
        raise ValueError(f"repeat and number must be >= 1 and warmup >= 0, got {repeat}, {number}, {warmup}")
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            result = fn()
        times.append((time.perf_counter() - start) / number)
    return Timing(best=min(times), median=statistics.median(times), times=tuple(times), result=result)


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits readable (us, ms, s)."""
    if seconds != seconds:  # NaN: not measured
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """Render rows as a fixed-width text table: first column left-aligned, the others right-aligned.

    Floats are shown with three significant digits; anything else with ``str``.
    """
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()

    out = [] if title is None else [title]
    out.append(line(cells[0]))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
