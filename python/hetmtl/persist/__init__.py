"""Saving and loading fitted hetmtl objects: one versioned file, no pickle.

:func:`save` writes an object to one file and :func:`load` reads it back; :func:`dumps` and
:func:`loads` do the same with bytes in memory (the R package keeps these bytes inside R objects,
so that ``saveRDS`` works). Every supported class also has ``obj.save(path)`` and
``Class.load(path)``, which refuses a file holding another class.

Supported objects: :class:`~hetmtl.fusion.LateFusion`, :class:`~hetmtl.fusion.SiteDML` (its
results: the site summary, estimates and tables), :class:`~hetmtl.fusion.SiteSummary`,
:class:`~hetmtl.fusion.GridSummary`, :class:`~hetmtl.fusion.NuisanceFusion` and its
:class:`~hetmtl.fusion.nuisance_fusion.FusedNuisance`, every neural estimator (the dual encoder,
its baselines and ablations, the block-wise models) and the block-wise imputers, fitted or not.
A loaded object gives the same predictions, tables, intervals and heterogeneity statistics as the
saved one.

The format
----------
A zip archive with

``manifest.json``
    ``format`` (``"hetmtl"``), ``format_version`` (an integer, :data:`FORMAT_VERSION`),
    ``package_version`` (the hetmtl that wrote it), ``object_type`` (``module:class``),
    ``tensor_files`` and ``state``: the object's attributes as JSON. Values that JSON has no type
    for are objects tagged with ``"$type"``: ``ndarray`` (dtype, shape, flat data), ``scalar``,
    ``float`` (NaN and infinities), ``tuple``, ``set``, ``dict`` (keys that are not strings),
    ``seed_sequence``, ``generator``, ``object`` (a hetmtl class or a scikit-learn estimator by
    ``module:class`` with its attributes), ``ref`` (an object met before), ``module`` (a torch
    network: class, attributes, and where its weights are), ``tensor``.
``networks/<n>.pt``
    The weights of network n, a torch state dict (``torch.save`` of a dict of tensors).
``tensors.pt``
    Tensors held outside any network.

Loading reads the ``.pt`` files with ``torch.load(weights_only=True)`` and builds only classes of
hetmtl, scikit-learn estimators and torch modules: a file carries data, never code. A file of
another format, of a newer format version than this release reads (the message names both), of an
unknown object type, or a damaged file raises :class:`FormatError`.

Not saved: ``SiteDML``'s row-level attributes (``predictions_``, ``folds_``, ``linear_score_``), and functions
(a callable ``basis``, for instance), which raise an error naming the attribute.
"""

from ._archive import FORMAT_NAME, FORMAT_VERSION, FormatError, dumps, load, loads, save
from ._codec import PersistError
from .mixin import Persistable, SchemaPersistable

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "FormatError", "Persistable", "PersistError",
           "SchemaPersistable", "dumps", "load", "loads", "save"]
