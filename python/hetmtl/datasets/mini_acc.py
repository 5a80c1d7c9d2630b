"""miniACC (TCGA adrenocortical carcinoma): multi-omics assays observed on different subsets of
92 patients, a real block-wise missing design. Read through R (rpy2) from the Bioconductor package
MultiAssayExperiment, which ships the data."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

#: The assays of miniACC, with their feature counts: gene expression (RNA-seq), copy number
#: (GISTIC), protein expression (reverse-phase protein array), somatic mutations (0/1) and
#: microRNA expression.
MINI_ACC_ASSAYS: tuple[str, ...] = ("RNASeq2GeneNorm", "gistict", "RPPAArray", "Mutations", "miRNASeqGene")

_EXTRACT = None  # R closure, defined on first use

_R_EXTRACT = """
function(assays) {
    if (!requireNamespace("MultiAssayExperiment", quietly = TRUE)) return(NULL)
    env <- new.env()
    utils::data("miniACC", package = "MultiAssayExperiment", envir = env)
    mae <- env$miniACC
    clinical <- as.data.frame(MultiAssayExperiment::colData(mae))
    patients <- rownames(clinical)
    smap <- as.data.frame(MultiAssayExperiment::sampleMap(mae))
    mats <- MultiAssayExperiment::assays(mae)
    out <- list()
    for (a in assays) {
        m <- as.matrix(mats[[a]])
        rows <- smap[smap$assay == a, ]
        patient_of <- rows$primary[match(colnames(m), rows$colname)]
        keep <- !duplicated(patient_of) & !is.na(patient_of)  # one sample per patient
        wide <- matrix(NA_real_, nrow = length(patients), ncol = nrow(m),
                       dimnames = list(patients, rownames(m)))
        wide[match(patient_of[keep], patients), ] <- t(m[, keep, drop = FALSE]) * 1.0
        out[[a]] <- wide
    }
    list(clinical = clinical, assays = out)
}
"""


def load_mini_acc(assays: Sequence[str] = MINI_ACC_ASSAYS) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Load miniACC as one wide table with whole assays missing per patient.

    92 TCGA adrenocortical carcinoma patients; each assay was measured on a subset of them (79 have
    RNA-seq, 90 copy number and mutations, 46 protein arrays, 80 microRNA). Grouping the patients by
    which assays they have gives tasks with block-wise missing sources, the layout of
    :class:`hetmtl.blockwise.BlockLayout`. Needs R with the Bioconductor package
    MultiAssayExperiment (Debian: ``r-bioc-multiassayexperiment``) and rpy2.

    Parameters
    ----------
    assays : sequence of str
        Which of :data:`MINI_ACC_ASSAYS` to include.

    Returns
    -------
    frame : pandas.DataFrame
        One row per patient (index: the patient barcode): the clinical columns (e.g.
        ``years_to_birth``, ``vital_status``, ``purity``, ``ploidy``, ``C1A.C1B``), then one column
        per assay feature named ``"<assay>:<feature>"``, NaN where the patient lacks the assay, and
        ``pattern``: the patient's observed assays joined by ``"+"``.
    sources : dict of str to list of str
        Assay name to its columns in ``frame`` (the ``sources`` argument of a layout).

    Raises
    ------
    ImportError
        When rpy2, R or MultiAssayExperiment is missing, saying what to install.
    """
    from .. import rbridge

    unknown = [a for a in assays if a not in MINI_ACC_ASSAYS]
    if unknown or len(assays) == 0:
        raise ValueError(f"assays: expected a non-empty subset of {MINI_ACC_ASSAYS}, got {list(assays)}")
    global _EXTRACT
    ri = rbridge._ri()
    if _EXTRACT is None:
        _EXTRACT = ri.evalr(_R_EXTRACT)
    res = _EXTRACT(ri.StrSexpVector(list(assays)))
    if res is not ri.NULL:
        res = rbridge._wrap(res)  # the high-level list, with access by name
    if res is ri.NULL:
        raise ImportError(
            "load_mini_acc needs the R package MultiAssayExperiment, which ships the data "
            "(Debian: apt-get install r-bioc-multiassayexperiment)")
    clinical = rbridge.r_to_pandas(res.rx2("clinical"))
    frame = clinical.copy()
    sources: dict[str, list[str]] = {}
    blocks = []
    observed = {}
    for a in assays:
        m = res.rx2("assays").rx2(a)
        values = rbridge.r_matrix_to_numpy(m).astype(np.float64)
        features = [str(f) for f in ri.baseenv["colnames"](m)]
        cols = [f"{a}:{f}" for f in features]
        blocks.append(pd.DataFrame(values, index=frame.index, columns=cols))
        sources[a] = cols
        observed[a] = np.isfinite(values).all(axis=1)
    frame = pd.concat([frame, *blocks], axis=1)
    frame["pattern"] = ["+".join(a for a in assays if observed[a][i]) for i in range(len(frame))]
    return frame, sources
