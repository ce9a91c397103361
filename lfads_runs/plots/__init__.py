"""Figures (matplotlib, an optional extra: imported inside each function)."""
