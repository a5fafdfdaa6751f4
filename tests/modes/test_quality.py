"""A small model trained by `--mode train` beats the constant baseline on the bundled task (slow).

Settings, for speed: the tiny preset without the pretraining stages, the decoder's layers trained with
the adapter (the variant docs/benchmarks.md, ## Quality, recommends), 2 epochs per fine-tuning stage.
The full tiny preset scores ROUGE-L 0.47 on test against the constant baseline's 0.27.
"""

from __future__ import annotations

import pytest

from latentbridge.modes import ModeOptions
from tests.factories import assets_config


@pytest.mark.slow
def test_a_fast_trained_model_beats_the_constant_baseline(tiny_root, tmp_path):
    from latentbridge.modes import train
    from latentbridge.modes.eval import evaluate
    from latentbridge.evaluation.trained_model import load_handoff

    config = assets_config(tiny_root, checkpoint_dir=str(tmp_path / "ck"), output_dir=str(tmp_path / "runs"),
                           preprocess_cache_dir=str(tmp_path / "cache"), run_pretraining=False,
                           decoder_unfrozen_layers=2, finetune_middle_epochs=2, finetune_adapter_epochs=2,
                           use_tui=False, max_generation_length=32)
    assert train.run(config, ModeOptions()).exit_code == 0
    report = evaluate(load_handoff(config), "validation", baselines=False)
    from latentbridge.data.sources import load_dialogue_split
    from latentbridge.modes.eval import constant_system
    from latentbridge.recipe import data_spec

    spec = data_spec(config)
    references = [e.target_text for e in load_dialogue_split(spec, "validation").examples]
    constant = constant_system(load_dialogue_split(spec, "train").examples, references)
    latent = report["systems"]["latent"]["rougeL"]
    assert latent > constant.mean_rouge_l + 0.05, (latent, constant)
    assert report["latent_metrics"]["retrieval_top1"] > 5 * report["latent_metrics"]["retrieval_chance"]
    assert report["prefix_use"]["pipeline"]["gap"] > 0
