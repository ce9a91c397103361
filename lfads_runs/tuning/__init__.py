"""Population-based training (AutoLFADS) of a collection's runs on Ray Tune.

``spec`` (the YAML ``tune:`` section) and ``results`` (reading a search's files)
import without ray or torch; ``driver`` and ``member`` need the ``ray`` and
``torch`` extras.
"""

from .spec import METRICS, SEARCHABLE, SearchRange, TuneSpec, parse_tune_section

__all__ = ["METRICS", "SEARCHABLE", "SearchRange", "TuneSpec", "parse_tune_section"]
