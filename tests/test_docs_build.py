"""The documentation site builds with warnings as errors, running every example it shows.

``mkdocs build --strict`` fails on a broken link, a page missing from the navigation, a
docstring the API reference cannot parse, or an example (markdown-exec) that raises. The build
needs the ``docs`` extra; the set-up installs it, so under CI its absence is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _require_mkdocs() -> None:
    try:
        import markdown_exec  # noqa: F401
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the docs extra is not installed, but CI=true (the set-up installs it): {exc}")
        pytest.skip(f"the docs extra is not installed: {exc}")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _require_mkdocs()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "NO_MKDOCS_2_WARNING": "1"}
    env.pop("CI", None)  # the build itself never depends on it
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                          "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
                         cwd=tmp_path_factory.mktemp("cwd"), env=env, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, f"mkdocs build --strict failed:\n{res.stdout}\n{res.stderr}"
    return out


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def test_every_page_of_the_navigation_is_built(site):
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = re.findall(r":\s*([\w/.-]+)\.md\s*$", nav, flags=re.MULTILINE)
    assert len(pages) >= 15
    for page in pages:
        folder = re.sub(r"(^|/)(index|README)$", "", page)  # index.md and README.md are folder pages
        assert (site / folder / "index.html").is_file(), page


def test_examples_ran_and_their_output_is_on_the_pages(site):
    assert "Per-site estimates" in _page(site, "getting-started")
    late = _page(site, "guide/late-fusion")
    assert "prediction interval" in late and "Heterogeneity: Q =" in late
    assert "Fused nuisances" in _page(site, "guide/nuisance-fusion")
    assert "DualEncoderMTL, fitted" in _page(site, "guide/dual-encoder")
    assert "TwoPathwayMTL, fitted" in _page(site, "guide/blockwise")
    assert "<svg" in _page(site, "guide/printing")  # the forest plot, drawn during the build
    assert "fused.csv" in _page(site, "cli")


def test_api_reference_renders_numpydoc_sections(site):
    api = _page(site, "api/fusion")
    for name in ("LateFusion", "SiteDML", "meta_analysis", "NuisanceFusion"):
        assert name in api
    assert "Parameters:" in api or "Parameters" in api
    assert "Returns" in api


@pytest.mark.parametrize("module_name", ["fusion", "dual", "blockwise", "simulate", "studies",
                                         "datasets", "nn", "prox"])
def test_every_public_callable_is_in_the_api_reference(site, module_name):
    if module_name in ("dual", "blockwise", "nn"):
        pytest.importorskip("torch")
    import importlib

    module = importlib.import_module(f"hetmtl.{module_name}")
    html = _page(site, f"api/{module_name}")
    missing = [name for name in module.__all__ if callable(getattr(module, name))
               and not re.search(rf'id="hetmtl\.{module_name}\.(\w+\.)?{name}"', html)]
    assert not missing, f"not in the API reference of hetmtl.{module_name}: {missing}"
