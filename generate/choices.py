"""The names and bounds generate's command line offers, in a module that imports no torch, so that
``python -m generate --help`` starts at once; the modules that implement them import them from here."""

DEFAULT_GENERATOR = "deadleaves"
PRECISIONS = ("fp32", "bf16", "fp16")  # what generate.generators.runtime runs a generator in
JPEG_ENCODERS = ("auto", "cpu", "cuda")
MAX_SAMPLING_STEPS = 1000  # DDIM cannot take more steps than the schedule has (1000 for DiT)
