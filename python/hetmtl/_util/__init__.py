"""Internal helpers shared across hetmtl's subpackages (not public API)."""
