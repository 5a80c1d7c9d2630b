"""Block-wise missing layouts: which columns form which source, which source anchors, and which
sources each task observes. NumPy and pandas only (no torch)."""

from __future__ import annotations

import warnings
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._util.validation import check_labels, check_no_bool_mix


class MissingBlockValuesWarning(UserWarning):
    """Rows hold values in a source their task misses in the layout; the values are ignored."""


class BlockLayout:
    """The block structure of multi-source data in which whole sources are missing per task.

    Every task observes the anchoring source; each other source is observed by some tasks and
    missing, as a whole block, for the others. The imputer predicts a missing block from the anchor
    and the multi-task model reads the completed rows.

    Parameters
    ----------
    sources : mapping of str to sequence
        Source name to its columns: column names (for DataFrames) or integer positions (for
        arrays). Sources must not share columns.
    anchor : str
        The source every task observes.
    observed : mapping of task label to sequence of str
        The sources each task observes (the anchor may be left out: it is always observed). The
        order of the tasks here is their order everywhere else.

    Examples
    --------
    >>> layout = BlockLayout({"x0": ["a", "b"], "x1": ["c"], "x2": ["d", "e"]}, anchor="x0",
    ...                      observed={"site A": ["x1"], "site B": ["x2"]})
    >>> layout.missing("site A")
    ('x2',)
    """

    def __init__(self, sources: Mapping[str, Sequence[Any]], anchor: str,
                 observed: Mapping[Hashable, Sequence[str]]):
        if not isinstance(sources, Mapping) or len(sources) == 0:
            raise ValueError("sources: expected a non-empty mapping of source name to its columns")
        columns: dict[str, tuple] = {}
        owner: dict[Any, str] = {}
        for name, cols in sources.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"sources: source names must be non-empty strings, got {name!r}")
            if isinstance(cols, (str, bytes)) or not isinstance(cols, Sequence) and not isinstance(cols, np.ndarray):
                raise ValueError(f"sources: the columns of {name!r} must be a sequence, got {cols!r}")
            cols = tuple(c.item() if isinstance(c, np.generic) else c for c in cols)
            if len(cols) == 0:
                raise ValueError(f"sources: source {name!r} has no columns")
            for c in cols:
                if c in owner:
                    raise ValueError(f"sources: column {c!r} belongs to both {owner[c]!r} and {name!r}")
                owner[c] = name
            columns[name] = cols
        kinds = {isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in owner}
        if len(kinds) > 1:
            raise ValueError("sources: columns must be all names or all integer positions, not a mix")
        if anchor not in columns:
            raise ValueError(f"anchor: {anchor!r} is not one of the sources {tuple(columns)}")
        if not isinstance(observed, Mapping) or len(observed) == 0:
            raise ValueError("observed: expected a non-empty mapping of task to the sources it observes")
        check_labels(list(observed), "observed")
        obs: dict[Hashable, tuple[str, ...]] = {}
        for task, names in observed.items():
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise ValueError(f"observed: the sources of task {task!r} must be a list of source names, "
                                 f"got {names!r}")
            unknown = [s for s in names if s not in columns]
            if unknown:
                raise ValueError(f"observed: task {task!r} names unknown source(s) {unknown}; "
                                 f"sources are {tuple(columns)}")
            seen = set(names) | {anchor}
            # NumPy scalars as Python values, so that to_dict stays JSON-ready
            obs[task.item() if isinstance(task, np.generic) else task] = tuple(s for s in columns if s in seen)
        unobserved = [s for s in columns if s != anchor and not any(s in o for o in obs.values())]
        if unobserved:
            raise ValueError(
                f"observed: source(s) {unobserved} are observed by no task; with no rows to learn from they "
                "cannot be imputed (drop them from sources)"
            )
        self._columns = columns
        self._anchor = anchor
        self._observed = obs

    # -- description ---------------------------------------------------------------------------------

    @property
    def anchor(self) -> str:
        """Name of the anchoring source."""
        return self._anchor

    @property
    def sources(self) -> tuple[str, ...]:
        """Source names, in the order given."""
        return tuple(self._columns)

    @property
    def tasks(self) -> tuple:
        """Task labels, in the order given."""
        return tuple(self._observed)

    @property
    def n_tasks(self) -> int:
        return len(self._observed)

    def columns(self, source: str) -> tuple:
        """The columns of ``source``."""
        self._check_source(source)
        return self._columns[source]

    def width(self, source: str) -> int:
        """Number of columns of ``source``."""
        return len(self.columns(source))

    @property
    def all_columns(self) -> tuple:
        """Every column, source by source."""
        return tuple(c for cols in self._columns.values() for c in cols)

    def observed(self, task: Hashable) -> tuple[str, ...]:
        """Sources observed by ``task`` (the anchor included)."""
        self._check_task(task)
        return self._observed[task]

    def missing(self, task: Hashable) -> tuple[str, ...]:
        """Sources missing for ``task``."""
        seen = self.observed(task)
        return tuple(s for s in self._columns if s not in seen)

    def observers(self, source: str) -> tuple:
        """Tasks that observe ``source``."""
        self._check_source(source)
        return tuple(t for t, o in self._observed.items() if source in o)

    @property
    def imputed_sources(self) -> tuple[str, ...]:
        """Sources missing for at least one task: the ones an imputer must learn."""
        return tuple(s for s in self._columns if s != self._anchor and len(self.observers(s)) < self.n_tasks)

    def observed_matrix(self) -> np.ndarray:
        """Boolean (tasks x sources) matrix: True where the task observes the source."""
        return np.array([[s in self._observed[t] for s in self._columns] for t in self._observed], dtype=bool)

    def summary(self) -> pd.DataFrame:
        """Tasks by sources, ``"observed"`` or ``"missing"``, with each source's width in its header."""
        cells = np.where(self.observed_matrix(), "observed", "missing")
        header = [f"{s} ({self.width(s)})" + (" anchor" if s == self._anchor else "") for s in self._columns]
        return pd.DataFrame(cells, index=pd.Index(list(self._observed), name="task"), columns=header)

    def __repr__(self) -> str:
        widths = ", ".join(f"{s}: {self.width(s)}" for s in self._columns)
        return f"BlockLayout(anchor={self._anchor!r}, sources={{{widths}}}, tasks={self.n_tasks})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlockLayout) and self.to_dict() == other.to_dict()

    # -- data ------------------------------------------------------------------------------------------

    def task_codes(self, task: Any) -> np.ndarray:
        """Task labels of rows as integer codes ``0..T-1`` in the layout's task order."""
        labels = np.asarray(task, dtype=object).ravel()
        # Keys that keep True apart from 1 (equal in Python, so a plain dict would merge them).
        lookup = {(isinstance(t, bool), t): i for i, t in enumerate(self._observed)}

        def code(lab: Any) -> int:
            lab = lab.item() if isinstance(lab, np.generic) else lab
            return lookup.get((isinstance(lab, bool), lab), -1)

        # One look-up per distinct label, not per row; missing labels (None, NaN) factorize to -1
        # and are looked up one by one.
        if not (isinstance(task, np.ndarray) and task.dtype != object):
            check_no_bool_mix(labels, "task")  # factorizing (or NumPy) would merge True with 1
        inverse, uniques = pd.factorize(labels)
        codes = np.array([code(u) for u in uniques] + [-1], dtype=np.int64)[inverse]
        na = np.flatnonzero(inverse < 0)
        codes[na] = [code(lab) for lab in labels[na]]
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"task: label {labels[i]!r} (row {i}) is not one of the layout's tasks {self.tasks}")
        return codes

    def source_positions(self, X: Any) -> dict[str, np.ndarray]:
        """Integer column positions of each source in ``X`` (a DataFrame or a 2-d array)."""
        if isinstance(X, pd.DataFrame):
            where = {c: i for i, c in enumerate(X.columns)}
            out = {}
            for s, cols in self._columns.items():
                absent = [c for c in cols if c not in where]
                if absent:
                    raise ValueError(f"X: missing column(s) {absent} of source {s!r}")
                out[s] = np.array([where[c] for c in cols], dtype=np.int64)
            return out
        d = np.shape(X)[1] if np.ndim(X) == 2 else None
        out = {}
        for s, cols in self._columns.items():
            if not all(isinstance(c, (int, np.integer)) for c in cols):
                raise ValueError(f"X: an array has no column names; source {s!r} is given by names {cols[:3]}")
            pos = np.array(cols, dtype=np.int64)
            bad = pos[(pos < 0) | (pos >= d)] if d is not None else pos[:0]
            if bad.size:
                raise ValueError(f"X: source {s!r} refers to column {int(bad[0])}, but X has {d} columns")
            out[s] = pos
        return out

    def split(self, X: Any, task: Any, warn_ignored: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-source float blocks of ``X`` and the rows' task codes, with the layout checked.

        Observed blocks must be finite; missing blocks are returned as NaN whatever ``X`` holds
        there (so a placeholder such as 0 cannot leak in as data); with ``warn_ignored`` a
        :class:`MissingBlockValuesWarning` says when it holds numbers (the models' rows; an
        imputer may be given the complete rows of a simulation to score against).
        """
        codes = self.task_codes(task)
        positions = self.source_positions(X)
        values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
        if values.ndim != 2:
            raise ValueError(f"X: expected a 2-dimensional table, got shape {values.shape}")
        if values.shape[0] != codes.shape[0]:
            raise ValueError(f"task: has {codes.shape[0]} labels but X has {values.shape[0]} rows")
        seen = self.observed_matrix()
        blocks: dict[str, np.ndarray] = {}
        for j, (s, pos) in enumerate(positions.items()):
            try:
                block = np.asarray(values[:, pos], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"X: the columns of source {s!r} are not numeric ({exc})") from None
            rows_seen = seen[codes, j]
            bad = rows_seen & ~np.isfinite(block).all(axis=1)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"X: source {s!r} is observed by task {self.tasks[codes[r]]!r} but row {r} has NaN or "
                    "infinite values in it (block-wise missing data has whole blocks missing per task)"
                )
            filled = ~rows_seen & np.isfinite(block).any(axis=1)
            if warn_ignored and filled.any():
                r = int(np.flatnonzero(filled)[0])
                warnings.warn(f"X: {int(filled.sum())} row(s) hold values in source {s!r}, which the layout "
                              f"declares missing for their task (first: row {r}, task "
                              f"{self.tasks[codes[r]]!r}); those values are ignored and the block is "
                              "treated as missing (relabel the rows' task if they observe it)",
                              MissingBlockValuesWarning, stacklevel=5)
            block = block.copy()
            block[~rows_seen] = np.nan
            blocks[s] = block
        return blocks, codes

    @classmethod
    def from_data(cls, X: Any, task: Any, sources: Mapping[str, Sequence[Any]], anchor: str) -> "BlockLayout":
        """Infer which sources each task observes from the NaN pattern of ``X``.

        A task observes a source when every one of its rows has that block finite, and misses it
        when every row has the block entirely NaN; anything in between is an error naming the task
        and the source. Tasks are ordered by first appearance.
        """
        missing = pd.isna(pd.Series(np.asarray(task, dtype=object).ravel()))
        if missing.any():
            raise ValueError(f"task: {int(missing.sum())} row(s) have no task label (first: row {int(missing.idxmax())})")
        labels = list(pd.unique(pd.Series(np.asarray(task, dtype=object).ravel())))
        provisional = cls(sources, anchor, {t: list(sources) for t in labels})
        positions = provisional.source_positions(X)
        values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
        lab = np.asarray(task, dtype=object).ravel()
        if lab.shape[0] != values.shape[0]:
            raise ValueError(f"task: has {lab.shape[0]} labels but X has {values.shape[0]} rows")
        observed: dict[Hashable, list[str]] = {}
        for t in labels:
            rows = values[lab == t]
            observed[t] = []
            for s, pos in positions.items():
                try:
                    finite = np.isfinite(np.asarray(rows[:, pos], dtype=np.float64))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"X: the columns of source {s!r} are not numeric ({exc})") from None
                if finite.all():
                    observed[t].append(s)
                elif (~finite).all():
                    continue
                else:
                    raise ValueError(
                        f"X: source {s!r} is partly observed for task {t!r} ({int(finite.sum())} of {finite.size} "
                        "values finite); a block must be either fully observed or fully missing within a task"
                    )
            if anchor not in observed[t]:
                raise ValueError(f"X: task {t!r} does not observe the anchor source {anchor!r} (every task must)")
        return cls(sources, anchor, observed)

    # -- serialization -----------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-ready description (task labels and columns as given)."""
        return {
            "sources": {s: list(c) for s, c in self._columns.items()},
            "anchor": self._anchor,
            "observed": [[t, [s for s in o if s != self._anchor]] for t, o in self._observed.items()],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "BlockLayout":
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(d["sources"], d["anchor"], {t: list(s) for t, s in d["observed"]})
        except KeyError as exc:
            raise ValueError(f"layout: missing field {exc}") from None

    # -- helpers ---------------------------------------------------------------------------------------

    def _check_source(self, source: str) -> None:
        if source not in self._columns:
            raise ValueError(f"source: {source!r} is not one of {tuple(self._columns)}")

    def _check_task(self, task: Hashable) -> None:
        if task not in self._observed:
            raise ValueError(f"task: {task!r} is not one of the layout's tasks {self.tasks}")
