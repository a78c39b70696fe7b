"""Defaults and bounds evaluate's command line offers, in a module that imports no torch, so that
``python -m evaluate --help`` starts at once; the metrics import them from here."""

DEFAULT_DRAWS = 5  # seeded draws of a low-label probe
# kNN votes exp(sim / T), sim up to 1, overflow float32 past exp(88), below T = 0.0114: every vote would
# be inf and the ranking of classes arbitrary.
MIN_TEMPERATURE = 0.02
