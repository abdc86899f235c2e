"""frptx's trial test suite.

Hypothesis's per-example deadline measures wall time, which a loaded CI machine
can exceed without anything being wrong, so the suite runs without it.
"""
from hypothesis import settings

settings.register_profile("frptx", deadline=None, print_blob=True)
settings.load_profile("frptx")
