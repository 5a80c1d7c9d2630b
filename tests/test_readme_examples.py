"""Every Python example of the README runs as written, each on its own in an empty folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


def python_blocks(markdown: str) -> list[tuple[str, str]]:
    """``(heading, code)`` of every fenced ``python`` block, the heading being the section's."""
    blocks = []
    for match in _FENCE.finditer(markdown):
        headings = re.findall(r"^## (.+)$", markdown[:match.start()], flags=re.MULTILINE)
        blocks.append((headings[-1] if headings else "top", match.group(1)))
    return blocks


BLOCKS = python_blocks((ROOT / "README.md").read_text())
NEEDS_TORCH = ("hetmtl.dual", "hetmtl.blockwise", "hetmtl.nn")


def test_readme_has_an_example_per_method():
    code = "\n".join(code for _, code in BLOCKS)
    for name in ("LateFusion", "NuisanceFusion", "DualEncoderMTL", "TwoPathwayMTL"):
        assert name in code


@pytest.mark.parametrize("heading, code", BLOCKS, ids=[h.split(" ")[0] + f"-{i}" for i, (h, _) in
                                                       enumerate(BLOCKS)])
def test_readme_example_runs(heading, code, tmp_path, monkeypatch):
    if any(module in code for module in NEEDS_TORCH):
        pytest.importorskip("torch")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, f"README.md ({heading})", "exec"), {"__name__": "__readme__"})
    finally:
        plt.close("all")


def test_repeated_site_names_are_refused_with_a_way_out():
    """SiteDML's default site name is "site": two sites left unnamed get a message that says how
    to name them, rather than a bare refusal."""
    from hetmtl.fusion import LateFusion, SiteSummary

    unnamed = [SiteSummary.from_estimate(0.2, 0.05, n=400), SiteSummary.from_estimate(0.3, 0.05, n=300)]
    with pytest.raises(ValueError, match=r"repeated: \['site'\]; name each site \(SiteDML\(site=\.\.\.\)"):
        LateFusion().fit(unnamed)
    named = LateFusion(method="fixed").fit({"A": unnamed[0], "B": unnamed[1]})
    assert named.site_names_ == ["A", "B"]
