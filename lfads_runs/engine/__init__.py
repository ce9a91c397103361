"""The LFADS engine: TensorFlow LFADS re-implemented in PyTorch (optional extra ``torch``).

Import lazily: the management layer never imports this package at module level.
"""

from __future__ import annotations

from .._optional import require

require("torch", "the LFADS engine")
