"""The package works without torch except for the neural subpackages, which say what to install."""

from __future__ import annotations

import subprocess
import sys

HIDE_TORCH = """
import importlib.abc
import sys


class NoTorch(importlib.abc.MetaPathFinder):
    # Behave as if torch were not installed. (Setting sys.modules["torch"] = None instead would
    # break libraries that look torch up in sys.modules, such as SciPy's array-API helpers.)
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
"""

CODE = HIDE_TORCH + """
import hetmtl, hetmtl.fusion, hetmtl.proximal, hetmtl.simulate, hetmtl.blockwise
assert hetmtl.blockwise.PAPER_GRID["n_layers"] == [2, 3, 4]
try:
    hetmtl.blockwise.TwoPathwayMTL
except ImportError as exc:
    assert "hetmtl[torch]" in str(exc), str(exc)
else:
    raise AssertionError("TwoPathwayMTL loaded without torch")
for name in ("hetmtl.nn", "hetmtl.dual"):
    try:
        __import__(name)
    except ImportError as exc:
        assert "hetmtl[torch]" in str(exc), str(exc)
    else:
        raise AssertionError(name + " imported without torch")
import numpy as np
from hetmtl.blockwise import BlockLayout, MeanBlockImputer
layout = BlockLayout({"x0": [0], "x1": [1]}, "x0", {"a": ["x1"], "b": []})
X = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, np.nan]])
assert MeanBlockImputer(layout).fit_transform(X, ["a", "a", "b"])[2, 1] == 2.0
try:
    from hetmtl.blockwise import HBIImputer
except ImportError as exc:
    assert "hetmtl[torch]" in str(exc), str(exc)
else:
    raise AssertionError("HBIImputer imported without torch")
print("ok")
"""


def test_import_without_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


ONE_MESSAGE = HIDE_TORCH + """
messages = []
try:
    import hetmtl.dual
except ImportError as exc:
    messages.append(str(exc))
import hetmtl.blockwise
for name in ("TwoPathwayMTL", "SingleTaskBlockMLP", "HBIImputer"):
    try:
        getattr(hetmtl.blockwise, name)
    except ImportError as exc:
        messages.append(str(exc))
print(len(messages), len(set(messages)))
print(messages[0])
"""


def test_every_neural_part_gives_one_message_naming_the_extra():
    out = subprocess.run([sys.executable, "-c", ONE_MESSAGE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counts, message = out.stdout.strip().splitlines()
    assert counts == "4 1"  # hetmtl.dual and three block-wise estimators, one message
    assert "hetmtl[torch]" in message and "hetmtl.dual" in message and "hetmtl.blockwise" in message
