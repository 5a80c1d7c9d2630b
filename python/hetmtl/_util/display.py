"""How results print: one report structure rendered as plain text and as notebook HTML.

A class that prints like a statistics package inherits :class:`ReportDisplay` and implements
``_display_report()``, returning a :class:`Report` (built by its area's report helpers, e.g.
:mod:`hetmtl.fusion.display`). ``print(obj)``, ``repr(obj)`` and a notebook cell then show the
same content. Tables are printed whole (never cut at pandas' display width), integers as integers
and other numbers to four significant digits.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["Report", "ReportDisplay", "Section", "format_frame", "format_number", "frame_html"]

SIGNIFICANT = 4


def format_number(value: Any, digits: int = SIGNIFICANT) -> str:
    """One value as text: integers whole, other numbers to ``digits`` significant digits.

    Fixed-point notation is used from 1e-4 up to 1e7 (so a sample size of 12000 prints as
    ``12000``, not ``1.2e+04``), scientific notation outside that range.
    """
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if x == 0.0:
            return "0"
        magnitude = math.floor(math.log10(abs(x)))
        if -4 <= magnitude < 7:
            decimals = max(0, digits - 1 - magnitude)
            return f"{x:.{decimals}f}"
        return f"{x:.{digits - 1}e}"
    return str(value)


def _integral(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    return finite.size > 0 and bool(np.all(finite == np.round(finite))) and bool(
        np.all(np.abs(finite) < 1e15))


def _column_formatter(column: pd.Series):
    """A formatter for a whole column: a float column holding only whole numbers prints them whole."""
    if pd.api.types.is_bool_dtype(column):
        return format_number
    if pd.api.types.is_float_dtype(column) and _integral(column.to_numpy(dtype=float)):
        return lambda v: format_number(int(v)) if np.isfinite(v) else format_number(v)
    return format_number


def _formatters(df: pd.DataFrame) -> list:
    return [_column_formatter(df.iloc[:, i]) for i in range(df.shape[1])]


def format_frame(df: pd.DataFrame) -> str:
    """A table as text, every row and column (no truncation at pandas' display options)."""
    return df.to_string(formatters=_formatters(df), max_rows=None, max_cols=None,
                        line_width=None)


def frame_html(df: pd.DataFrame) -> str:
    """A table as an HTML ``<table>``, every row and column, numbers formatted as in text."""
    return df.to_html(formatters=_formatters(df), max_rows=None, max_cols=None, border=0,
                      classes="hetmtl-table", escape=True)


@dataclass
class Section:
    """One part of a report: a heading over a table, lines of text or named values.

    Attributes
    ----------
    heading : str
        Printed above the body (may be empty).
    table : pandas.DataFrame or None
        A table printed whole.
    lines : sequence of str
        Lines of text (printed after the table, if any).
    values : mapping of str to object
        Named values printed as ``name: value`` (numbers through :func:`format_number`).
    """

    heading: str = ""
    table: pd.DataFrame | None = None
    lines: Sequence[str] = ()
    values: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The section as plain text."""
        parts = [self.heading] if self.heading else []
        parts += [f"  {name}: {format_number(v)}" for name, v in self.values.items()]
        if self.table is not None:
            parts.append(format_frame(self.table))
        parts += list(self.lines)
        return "\n".join(parts)

    def html(self) -> str:
        """The section as an HTML fragment."""
        parts = [f"<h4>{html.escape(self.heading)}</h4>"] if self.heading else []
        if self.values:
            rows = "".join(f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
                           f"<td>{html.escape(format_number(v))}</td></tr>"
                           for name, v in self.values.items())
            parts.append(f"<table class='hetmtl-values'>{rows}</table>")
        if self.table is not None:
            parts.append(frame_html(self.table))
        parts += [f"<p>{html.escape(line)}</p>" for line in self.lines]
        return "".join(parts)


@dataclass
class Report:
    """What an object prints: a title and its sections.

    Attributes
    ----------
    title : str
        First line of the text.
    sections : list of Section
    fitted : bool
        False for an estimator that has not been fitted yet (its ``repr`` then stays the short
        constructor call).
    """

    title: str
    sections: list[Section] = field(default_factory=list)
    fitted: bool = True

    def text(self) -> str:
        """The report as plain text (what ``print`` shows)."""
        return "\n\n".join([self.title] + [s.text() for s in self.sections if s.text()]) + "\n"

    def html(self) -> str:
        """The report as HTML (what a notebook shows)."""
        body = "".join(s.html() for s in self.sections)
        return (f"<div class='hetmtl-report'><strong>{html.escape(self.title)}</strong>"
                f"{body}</div>")

    def __str__(self) -> str:
        return self.text()


class ReportDisplay:
    """Mixin: ``print``, ``repr`` and notebook display from the class's ``_display_report()``.

    For a scikit-learn estimator that is not fitted, ``repr`` stays scikit-learn's constructor
    call; ``print`` shows the report (settings, "not fitted").
    """

    def _display_report(self) -> Report:  # pragma: no cover - every user implements it
        raise NotImplementedError

    def __str__(self) -> str:
        return self._display_report().text().rstrip("\n")

    def __repr__(self) -> str:
        report = self._display_report()
        if not report.fitted:
            base = super().__repr__()  # scikit-learn's constructor call where there is one
            if " object at 0x" not in base:
                return base
        return report.text().rstrip("\n")

    def _repr_html_(self) -> str:
        return self._display_report().html()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        # scikit-learn estimators define this too (their diagram); notebooks prefer it.
        return {"text/plain": repr(self), "text/html": self._repr_html_()}
