"""The value lists that both the Config (its flags' choices) and the models (what they build) name, kept once.

Stdlib only and below both: the config layer and models/specs.py import these tuples, so a choice the CLI
offers is always one the models know.
"""

from __future__ import annotations

# Initialisations of the middle's stop latent (a learned parameter, seeded by stop_latent_seed):
#   random_normalized  N(0, 1) draw scaled to unit length (the default; far from every real latent)
#   random             N(0, 1/latent_dim) draw, not normalised
#   zeros              the origin: its cosine to anything is 0, so generation never stops early
#                      until training has moved it away from the origin
STOP_LATENT_INITS = ("random_normalized", "random", "zeros")
# Attention backends a run may ask for; models/backends.py falls back to sdpa where one is unavailable.
ATTENTION_IMPLEMENTATIONS = ("flash_attention_2", "sdpa", "eager")
# The middle models (models/middle.py builds one per name).
MIDDLE_ARCHITECTURES = ("transformer", "mlp")
# The latent cache's record formats (data/ writes and reads both).
CACHE_FORMATS = ("jsonl", "npy")
