"""The public API documents itself: every public callable has numpydoc Parameters/Returns.

Public means a name in a subpackage's ``__all__``. A function with parameters needs a
``Parameters`` section, and one that returns something (not annotated ``-> None``) a ``Returns``
(or ``Yields``) section; a class whose constructor takes arguments needs ``Parameters`` (a
result object may list its fields under ``Attributes`` instead). Warnings and exceptions need only a
docstring. The docs' version statement agrees with the package's.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import hetmtl

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["hetmtl.fusion", "hetmtl.simulate", "hetmtl.studies", "hetmtl.datasets",
               "hetmtl.prox", "hetmtl.dual", "hetmtl.blockwise", "hetmtl.nn"]
TORCH = {"hetmtl.dual", "hetmtl.blockwise", "hetmtl.nn"}


def _public(module_name: str) -> list[tuple[str, object]]:
    if module_name in TORCH:
        pytest.importorskip("torch")
    module = importlib.import_module(module_name)
    return [(f"{module_name}.{name}", getattr(module, name)) for name in getattr(module, "__all__", [])]


def _sections(doc: str) -> set[str]:
    return set(re.findall(r"^\s*([A-Z][a-z]+)\n\s*-{3,}\s*$", doc, flags=re.MULTILINE))


def _takes_arguments(func) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.name not in ("self", "cls") for p in params)


def _returns_something(func) -> bool:
    annotation = inspect.signature(func).return_annotation
    return annotation not in (None, "None", type(None))


def problems(name: str, obj: object) -> list[str]:
    """What the docstring of one public object lacks."""
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return [f"{name}: no docstring"]
    sections = _sections(doc)
    if inspect.isclass(obj):
        if issubclass(obj, (Warning, Exception)):
            return []
        needs = "__init__" in vars(obj) and _takes_arguments(obj.__init__)
        # A result object (built by the package, read by the user) may document its fields instead.
        return [f"{name}: no Parameters section"] if needs and not sections & {"Parameters", "Attributes"} else []
    if not callable(obj):
        return []
    missing = []
    if _takes_arguments(obj) and "Parameters" not in sections:
        missing.append(f"{name}: no Parameters section")
    if _returns_something(obj) and not sections & {"Returns", "Yields"}:
        missing.append(f"{name}: no Returns section")
    return missing


@pytest.mark.parametrize("module_name", SUBPACKAGES)
def test_public_callables_have_parameters_and_returns(module_name):
    public = _public(module_name)
    assert public, f"{module_name} has an empty __all__"
    missing = [p for name, obj in public for p in problems(name, obj)]
    assert not missing, "\n".join(missing)


def test_the_check_catches_a_bare_docstring():
    def documented(x: int) -> int:
        """Double ``x``.

        Parameters
        ----------
        x : int

        Returns
        -------
        int
        """
        return 2 * x

    def bare(x: int) -> int:
        """Double ``x``."""
        return 2 * x

    assert problems("documented", documented) == []
    assert problems("bare", bare) == ["bare: no Parameters section", "bare: no Returns section"]


def test_docs_state_the_package_version():
    index = (ROOT / "docs" / "index.md").read_text()
    stated = re.search(r"hetmtl (\d+\.\d+\.\d+\S*?)\*\*", index)
    assert stated, "docs/index.md does not state the version"
    assert stated.group(1) == hetmtl.__version__
