"""The choice lists both the Config and the models name are one tuple each (latentbridge.choices)."""

from __future__ import annotations

from latentbridge import choices
from latentbridge.config import field_meta
from latentbridge.models import specs
from latentbridge.models.middle import MIDDLES


def test_config_and_model_specs_see_the_same_tuples():
    assert specs.ATTENTION_IMPLEMENTATIONS is choices.ATTENTION_IMPLEMENTATIONS
    assert specs.STOP_LATENT_INITS is choices.STOP_LATENT_INITS
    assert field_meta("attn_implementation")["choices"] is choices.ATTENTION_IMPLEMENTATIONS
    assert field_meta("stop_latent_init")["choices"] is choices.STOP_LATENT_INITS
    assert field_meta("middle_architecture")["choices"] is choices.MIDDLE_ARCHITECTURES


def test_every_middle_architecture_the_config_offers_is_one_the_models_build():
    assert tuple(MIDDLES) == choices.MIDDLE_ARCHITECTURES


def test_the_cache_formats_the_config_offers_are_the_ones_data_writes():
    from latentbridge.data.encoding import build

    assert field_meta("preprocess_format")["choices"] is choices.CACHE_FORMATS is build.CACHE_FORMATS
