"""The names and bounds generate's command line offers, in a module that imports no torch, so that
``python -m generate --help`` starts at once; the modules that implement them import them from here."""

from shards.schema import KEY_DIGITS

DEFAULT_GENERATOR = "deadleaves"
PRECISIONS = ("fp32", "bf16", "fp16")  # what generate.generators.runtime runs a generator in
JPEG_ENCODERS = ("auto", "cpu", "cuda")
MAX_SAMPLING_STEPS = 1000  # DDIM cannot take more steps than the schedule has (1000 for DiT)

# Bounds on numbers, so that a typo is refused in one sentence instead of failing hours later.
MAX_ANCHORS = 10**KEY_DIGITS  # anchors 0 .. 10^10 - 1 have 10-digit keys
MAX_SHARDS = 10**6  # shard names have 6 digits
MAX_GROUPS_PER_SHARD = 100_000  # a shard's latents are drawn, and its tar written, at once
MAX_VIEWS = 1000  # a group's views are held together; readers refuse more than 1024 by default
MAX_BATCH_SIZE = 4096
MAX_LATENT_SCALE = 100.0  # --sigma and --truncation: latents are standard normals truncated to [-2, 2]
# The options whose values the manifest records: --like reads them all from it instead.
RECIPE_OPTIONS = ("generator", "n_anchors", "views", "view_method", "sigma", "steer_range", "steer_directions",
                  "preserve_norm", "truncation", "classes", "seed", "image_size", "quality", "groups_per_shard",
                  "precision", "license", "description", "sampling_steps", "guidance", "strength")
