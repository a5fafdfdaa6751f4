"""pretrain_mix: inline lists, mix files (a list, `datasets`, seed 002's named `data_mixes`), their checks, and
what the recipe makes of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from latentbridge import recipe
from latentbridge.config import ConfigError
from latentbridge.errors import UserError
from latentbridge.models.specs import Runtime
from latentbridge.pretrain_mix import MixError, MixSource, load_mix, parse_inline
from tests.factories import assets_config, tiny_config


def test_inline_mix_names_sources_after_their_paths_and_defaults_weights_to_one():
    mix = parse_inline("dataset:0.3, data/wiki.jsonl:0.7,org/arxiv-abstracts,corpus/")
    assert [(s.name, s.path, s.weight) for s in mix] == [
        ("dataset", "dataset", 0.3), ("wiki", "data/wiki.jsonl", 0.7), ("arxiv-abstracts", "org/arxiv-abstracts", 1.0),
        ("corpus", "corpus/", 1.0)]
    assert mix[0].is_task_dataset and not mix[1].is_task_dataset


@pytest.mark.parametrize("value, why", [("a.jsonl:0,b.jsonl", "weights must be positive"),
                                        ("a.jsonl:-1", "weights must be positive"),
                                        ("x/a.jsonl,y/a.jsonl", "two sources are called 'a'"),
                                        ("a.jsonl,,b.jsonl", "an entry is empty"),
                                        ("a.jsonl:1e400", "weights must be positive")])
def test_inline_mix_errors_are_found_when_the_config_is_built(value, why):
    with pytest.raises(MixError, match=why):
        parse_inline(value)
    with pytest.raises(ConfigError, match=rf"pretrain_mix.*{why}.*--pretrain-mix"):
        tiny_config(pretrain_mix=value)


def _write(path: Path, data) -> str:
    path.write_text(yaml.safe_dump(data) if path.suffix != ".json" else json.dumps(data))
    return str(path)


def test_mix_file_as_a_list_with_paths_relative_to_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "wiki.jsonl").write_text("")
    path = _write(tmp_path / "mix.yaml", [
        {"name": "wiki", "path": "data/wiki.jsonl", "weight": 0.6, "text_field": "body", "cap": 100},
        {"path": "dataset", "weight": 0.4},
        {"name": "hub", "path": "org/corpus", "subset": "en", "split": "train", "text_template": "{title}\n{text}"}])
    mix = load_mix(path)
    assert mix[0] == MixSource("wiki", str(tmp_path / "data" / "wiki.jsonl"), 0.6, text_field="body", cap=100)
    assert mix[1] == MixSource("dataset", "dataset", 0.4)
    assert (mix[2].path, mix[2].subset, mix[2].split, mix[2].weight) == ("org/corpus", "en", "train", 1.0)


def test_named_mix_of_a_seed_002_file_is_picked_by_file_colon_name(tmp_path):
    data = {"data_mixes": {
        "high_quality_mix": {"name": "high_quality_mix", "datasets": [
            {"name": "one", "path": "/abs/one.jsonl", "format": "json", "streaming": True, "weight": 0.4,
             "text_field": "text"}, {"name": "two", "path": "dataset", "weight": 0.6}]},
        "science_mix": {"datasets": [{"name": "sci", "path": "org/sci"}]}}}
    path = _write(tmp_path / "mixes.json", data)
    assert [s.name for s in load_mix(f"{path}:high_quality_mix")] == ["one", "two"]
    assert [s.name for s in load_mix(f"{path}:science_mix")] == ["sci"]
    with pytest.raises(MixError, match="several mixes.*high_quality_mix, science_mix.*:NAME"):
        load_mix(path)
    with pytest.raises(MixError, match="no mix 'nope'"):
        load_mix(f"{path}:nope")


@pytest.mark.parametrize("entry, why", [({"name": "a", "weight": 1}, "needs a `path`"),
                                        ({"path": "a.jsonl", "weigth": 1}, r"unknown keys \['weigth'\]"),
                                        ({"path": "a.jsonl", "text_field": "t", "text_template": "{t}"}, "keep one"),
                                        ({"path": "a.jsonl", "text_template": "{}"}, "must name a column"),
                                        ({"path": "a.csv", "format": "json"}, "does not match the extension"),
                                        ({"path": "dataset", "text_field": "x"}, "the task dataset"),
                                        ({"path": "a.jsonl", "cap": 0}, "positive number of documents")])
def test_mix_file_mistakes_name_the_file_and_source(tmp_path, entry, why):
    path = _write(tmp_path / "mix.yaml", [entry])
    with pytest.raises(MixError, match=why):
        load_mix(path)


def test_a_missing_mix_file_is_refused_when_the_data_is_needed_not_when_a_saved_config_is_read(tmp_path):
    config = tiny_config(pretrain_mix=str(tmp_path / "gone.yaml"))  # infer/eval rebuild saved configs: no error
    with pytest.raises(UserError, match=r"pretrain_mix.*gone.yaml does not exist.*--pretrain-mix"):
        recipe.data_spec(config)
    assert recipe.data_spec(config, ("dialogue",)).pretrain == ()  # eval reads dialogues only
    assert recipe.data_spec(config.replace(run_pretraining=False), recipe.collections(
        config.replace(run_pretraining=False))).pretrain == ()


def test_a_json_data_file_is_a_source_not_a_mix(tmp_path):
    data = tmp_path / "docs.json"
    data.write_text(json.dumps([{"text": "One. Two."}]))
    assert [(s.name, s.path) for s in load_mix(str(data))] == [("docs", str(data))]


def test_recipe_maps_a_mix_to_weighted_sources_with_caps(tmp_path, tiny_root):
    config = assets_config(tiny_root, pretrain_mix=f"dataset:1,{tiny_root}/data/pretrain/wikitext.jsonl:3",
                           max_train_samples=50)
    sources = recipe.data_spec(config).pretrain
    assert [(s.name, s.weight, s.task_texts, s.max_samples, s.field) for s in sources] == [
        ("dataset", 1.0, True, 50, "pretrain_mix"), ("wikitext", 3.0, False, 50, "pretrain_mix")]
    assert sources[0].location == config.dataset_name
    files = recipe.cache_fingerprint_parts(config, Runtime(), ("pretrain",))["data_files"]
    assert set(files) == {"dataset", "wikitext"}


def test_tiny_preset_on_another_dataset_pretrains_on_that_dataset(tmp_path, tiny_root):
    bundled = recipe.data_spec(assets_config(tiny_root)).pretrain
    assert [s.name for s in bundled] == ["wikitext", "arxiv", "english"]
    own = recipe.data_spec(assets_config(tiny_root, dataset_name=str(tmp_path / "mine"))).pretrain
    assert [(s.name, s.task_texts, s.location) for s in own] == [("dataset", True, str(tmp_path / "mine"))]
    mixed = recipe.data_spec(assets_config(tiny_root, dataset_name=str(tmp_path / "mine"),
                                           pretrain_mix="dataset:1,org/wiki:1")).pretrain
    assert [s.name for s in mixed] == ["dataset", "wiki"]  # an explicit mix wins


def test_default_sources_keep_their_cache_fingerprint():
    """The seed-004 sources fingerprint as before mixes existed, so their caches are reused."""
    data = recipe.cache_fingerprint_parts(tiny_config(), Runtime(), ("pretrain",))["data"]
    assert all(set(s) == {"name", "location", "field", "max_samples"} for s in data["pretrain"])
