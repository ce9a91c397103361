"""Data preparation: loading recordings, binning, splitting, alignment and synthetic data."""
