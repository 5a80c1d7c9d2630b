"""What a user installing the package relies on: one version everywhere, a license, type hints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hetmtl

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def _r_version() -> str:
    text = (ROOT / "r-wrapper" / "DESCRIPTION").read_text()
    match = re.search(r"^Version:\s*(\S+)\s*$", text, flags=re.MULTILINE)
    assert match, "r-wrapper/DESCRIPTION has no Version field"
    return match.group(1)


def test_python_r_and_installed_versions_agree():
    version = _pyproject_version()
    assert _r_version() == version
    assert hetmtl.__version__ == version


def test_changelog_has_an_entry_for_the_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(_pyproject_version())}\b", changelog, flags=re.MULTILINE)


def test_license_and_type_marker_ship():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (Path(hetmtl.__file__).parent / "py.typed").is_file()


def test_package_help_names_every_method():
    doc = hetmtl.__doc__
    for subpackage in ("fusion", "dual", "blockwise"):
        assert f"\n{subpackage}\n" in doc
    assert "Quick start" in doc
