"""miniACC (TCGA adrenocortical carcinoma) through R: a real block-wise missing design."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.blockwise import BlockLayout
from hetmtl.datasets import MINI_ACC_ASSAYS, load_mini_acc

pytestmark = [pytest.mark.r, pytest.mark.usefixtures("robjects")]


@pytest.fixture(scope="module")
def mini_acc():
    return load_mini_acc()


def test_assays_and_patients(mini_acc):
    frame, sources = mini_acc
    assert frame.shape[0] == 92
    widths = {a: len(c) for a, c in sources.items()}
    assert widths == {"RNASeq2GeneNorm": 198, "gistict": 198, "RPPAArray": 33, "Mutations": 97,
                      "miRNASeqGene": 471}
    # Patients per assay, as MultiAssayExperiment's sample map gives them.
    seen = {a: int(np.isfinite(frame[c].to_numpy()).all(axis=1).sum()) for a, c in sources.items()}
    assert seen == {"RNASeq2GeneNorm": 79, "gistict": 90, "RPPAArray": 46, "Mutations": 90, "miRNASeqGene": 80}
    assert set(np.unique(frame[sources["Mutations"]].dropna().to_numpy())) <= {0.0, 1.0}
    for cols in sources.values():  # whole blocks: a patient has all of an assay or none of it
        finite = np.isfinite(frame[cols].to_numpy())
        assert np.all(finite.all(axis=1) | ~finite.any(axis=1))
    counts = frame["pattern"].value_counts()
    assert counts["+".join(MINI_ACC_ASSAYS)] == 43
    assert counts["RNASeq2GeneNorm+gistict+Mutations+miRNASeqGene"] == 32


def test_patterns_as_tasks_give_a_layout(mini_acc):
    frame, sources = mini_acc
    full = "+".join(MINI_ACC_ASSAYS)
    no_protein = "RNASeq2GeneNorm+gistict+Mutations+miRNASeqGene"
    rows = frame[frame["pattern"].isin([full, no_protein])]
    anchor = sources["RNASeq2GeneNorm"] + sources["gistict"]
    layout = BlockLayout.from_data(
        rows, rows["pattern"], {"anchor": anchor, "protein": sources["RPPAArray"], "mirna": sources["miRNASeqGene"]},
        anchor="anchor")
    assert layout.observed(full) == ("anchor", "protein", "mirna")
    assert layout.observed(no_protein) == ("anchor", "mirna")
    assert layout.imputed_sources == ("protein",)
    blocks, codes = layout.split(rows, rows["pattern"])
    lacking = codes == layout.tasks.index(no_protein)
    assert np.isnan(blocks["protein"][lacking]).all() and np.isfinite(blocks["protein"][~lacking]).all()


def test_bad_assay_name():
    with pytest.raises(ValueError, match="assays"):
        load_mini_acc(["RNASeq2GeneNorm", "methylation"])
