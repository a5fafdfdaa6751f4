"""docs/configuration.md is generated from Config and must not go stale."""

from latentbridge import config_docs
from latentbridge.config import field_names


def test_configuration_docs_are_current():
    assert config_docs.DOCS_PATH.read_text(encoding="utf-8") == config_docs.render(), (
        "docs/configuration.md is stale: run `python -m latentbridge.config_docs`")


def test_every_field_has_a_docs_row():
    text = config_docs.render()
    for name in field_names():
        assert f"| `{name}` | `--{name.replace('_', '-')}`" in text
