"""Ablations of the dual encoder: the same estimator with one of its two encoders removed."""

from __future__ import annotations

from typing import Any

from .estimator import DualEncoderMTL


def shared_only(**params: Any):
    """The dual encoder without task-specific encoders (``latent_specific=0``): task heads on the
    same shared encoding (default width 12) only, still fused toward their center.

    Parameters
    ----------
    **params
        Any other parameter of :class:`~hetmtl.dual.DualEncoderMTL` (``latent_specific`` is 0).

    Returns
    -------
    DualEncoderMTL
        The estimator, not fitted.
    """
    return DualEncoderMTL(**{**params, "latent_specific": 0})


def specific_only(**params: Any):
    """The dual encoder without the shared encoder (``latent_shared=0``): every task learns its own
    encoder and head, so nothing is shared (``lam_specific`` is 0 unless given: shrinking the only
    head toward zero would remove the model; a task whose encoder does worse than its mean on its
    validation rows is still switched off, unless ``specific_selection="penalty"``).

    Parameters
    ----------
    **params
        Passed to :class:`~hetmtl.dual.DualEncoderMTL`, whose ``latent_shared`` is 0 here.

    Returns
    -------
    DualEncoderMTL
    """
    params.setdefault("latent_specific", 12)
    params.setdefault("lam_specific", 0.0)
    return DualEncoderMTL(**{**params, "latent_shared": 0})
