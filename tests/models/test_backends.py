import pytest

from latentbridge.errors import UserError
from latentbridge.models.bridge import build_model
from tests.factories import tiny_spec


def test_hub_name_without_a_local_copy_is_a_user_error_naming_the_way_forward(tiny_assets):
    spec = tiny_spec(tiny_assets, encoder={"model": "nobody-here/ModernBERT-nothing"})
    with pytest.raises(UserError) as e:
        build_model(spec)
    assert "modernbert_model" in str(e.value) and "--preset tiny" in str(e.value) and "local folder" in str(e.value)


def test_missing_local_folder_is_a_user_error(tiny_assets, tmp_path):
    with pytest.raises(UserError, match="gpt2_model"):
        build_model(tiny_spec(tiny_assets, decoder={"model": str(tmp_path / "no" / "such" / "gemma")}))


def test_folder_without_config_is_a_user_error(tiny_assets, tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        build_model(tiny_spec(tiny_assets, decoder={"model": str(tmp_path)}))


def test_hidden_dim_mismatch_names_the_field(tiny_assets):
    with pytest.raises(UserError, match="gpt2_hidden_dim is 640 but .* hidden size 64"):
        build_model(tiny_spec(tiny_assets, decoder={"expected_hidden_dim": 640}))
    with pytest.raises(UserError, match="modernbert_hidden_dim"):
        build_model(tiny_spec(tiny_assets, encoder={"expected_hidden_dim": 768}))


def test_too_many_unfrozen_layers_is_a_user_error(tiny_assets):
    with pytest.raises(UserError, match="num_encoder_unfrozen_layers"):
        build_model(tiny_spec(tiny_assets, encoder={"unfrozen_layers": 5}))
