"""The Python API's model (TrainedModel): load from a file or folder, generate, encode."""

from __future__ import annotations

import pytest
import torch

from latentbridge.config import ConfigError
from latentbridge.errors import UserError
from latentbridge.evaluation.trained_model import load
from tests.factories import DIALOGUES, assets_config, write_handoff


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("api")
    config = assets_config(tiny_root, checkpoint_dir=str(work / "ck"), max_generation_length=6, batch_size=3)
    return config, write_handoff(config)


def test_a_folder_means_its_handoff_file(trained):
    config, path = trained
    from_folder, from_file = load(path.parent), load(path)
    assert from_folder.path == from_file.path == path and from_folder.config == config
    assert not from_folder.model.training


def test_generate_batches_and_seeds(trained):
    model = load(trained[1])
    assert model.generate(DIALOGUES) == model.generate(DIALOGUES, batch_size=1)  # 3 + 1 vs 1 x 4, greedy
    first = model.generate(DIALOGUES, do_sample=True, temperature=1.5, seed=4)
    assert model.generate(DIALOGUES, do_sample=True, temperature=1.5, seed=4) == first
    assert [model.generate(DIALOGUES, do_sample=True, temperature=1.5, seed=s) for s in (5, 6)] != [first, first]


def test_generate_refuses_what_is_not_a_valid_sampling_setting(trained):
    model = load(trained[1])
    with pytest.raises(TypeError, match="latent_dim"):
        model.generate(DIALOGUES, latent_dim=8)
    with pytest.raises(ConfigError, match="temperature"):
        model.generate(DIALOGUES, temperature=0)
    with pytest.raises(UserError, match="mine.txt is too long"):
        model.generate(["word " * 4000], where=["mine.txt"])


def test_encode_gives_the_model_latents_in_any_batch_size(trained):
    model = load(trained[1])
    latents, mask = model.encode(DIALOGUES)
    one_by_one = torch.cat([model.encode([text])[0] for text in DIALOGUES])
    assert latents.shape == (4, model.config.latent_seq_len, model.config.latent_dim) and mask.dtype == torch.bool
    torch.testing.assert_close(latents, one_by_one, atol=1e-5, rtol=1e-4)
    assert mask.all() and model.encode([""])[1].sum() == 2  # [CLS] [SEP]: two tokens fill two latent slots
