"""docs/python-api.md runs as written: its code blocks, in order, in a fresh folder on the tiny preset."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import link_tiny_assets

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"
API = ("load_config", "run", "load", "generate", "encode")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_documented_examples_run(tiny_root, tmp_path, monkeypatch, capsys):
    """The doc's `cache/tiny` is the session's tiny assets (the preset builds them there on first use)."""
    link_tiny_assets(tmp_path, tiny_root)
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks(DOC.read_text(encoding="utf-8"))
    assert all(re.search(rf"\b{name}\(", "".join(blocks)) for name in API)
    namespace: dict = {}
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC.name} block {i}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "did you mean learning_rate?" in out and "Training done (16 steps)" in out
    assert "chekpoint is not an option of a mode" in out


def test_import_latentbridge_stays_light():
    code = ("import sys, latentbridge; latentbridge.Config; latentbridge.load_config; latentbridge.run; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_unknown_names_and_missing_models_are_refused(tiny_root):
    import latentbridge

    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        latentbridge.lod  # noqa: B018
    assert set(latentbridge.__all__) >= {"Config", "load_config", "run", "load", "TrainedModel"}
    with pytest.raises(latentbridge.UserError, match="No trained model"):
        latentbridge.load(tiny_root / "nowhere")
