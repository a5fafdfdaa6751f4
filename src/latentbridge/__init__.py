"""latentbridge: a latent-space text-to-text model, its typed Config, and the pipeline that trains it.

The Python API (docs/python-api.md):

    import latentbridge

    config = latentbridge.load_config(preset="tiny", learning_rate=5e-4)  # defaults < preset < files < overrides
    result = latentbridge.run(config, mode="train")                       # any --mode, as the CLI runs it
    model = latentbridge.load("checkpoints/tiny")                          # a model file, or the folder holding it
    model.generate(["Anna: lunch at 1? Ben: sure"], do_sample=True, seed=3)
    latents, mask = model.encode(["Anna: lunch at 1? Ben: sure"])

Each name is imported on first use, so `import latentbridge` stays light: torch loads only with a model.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {  # name -> the module that defines it
    "Config": "latentbridge.config",
    "ConfigError": "latentbridge.config",
    "UserError": "latentbridge.errors",
    "load_config": "latentbridge.config_sources",
    "run": "latentbridge.modes",
    "load": "latentbridge.evaluation.trained_model",
    "TrainedModel": "latentbridge.evaluation.trained_model",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'latentbridge' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
