"""The README read top to bottom just works (issue 21): its tiny-preset command lines, taken from its code blocks,
run in order in a fresh folder and each exits 0. Tiny caps come from LATENTBRIDGE_* variables, so each training
takes seconds. The whole sequence is slow (it trains five times, once on a user's own data, which builds that
data's tiny models); the default run keeps the lines that need no model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import link_tiny_assets

ROOT = Path(__file__).resolve().parents[1]
CAPS = {"MAX_TRAIN_SAMPLES": "32", "PRETRAIN_MIDDLE_MAX_SAMPLES": "32", "PRETRAIN_ADAPTER_MAX_SAMPLES": "32",
        "MAX_VALIDATION_SAMPLES": "8", "MAX_TEST_SAMPLES": "8", "BATCH_SIZE": "8", "PRETRAIN_MIDDLE_EPOCHS": "1",
        "PRETRAIN_ADAPTER_EPOCHS": "1", "FINETUNE_MIDDLE_EPOCHS": "1", "FINETUNE_ADAPTER_EPOCHS": "1",
        "USE_TUI": "false"}
NEEDS_NO_MODEL = ("--help", "--mode config")


def readme_commands() -> list[str]:
    """The README's `python main.py` lines of the tiny preset (or of the config file it saves), in order, with
    continuation lines joined: torchrun, accelerate and the real-size lines need more than a CPU."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("&&")[-1].strip()  # `pip install ... && python main.py ...`: the command
            wanted = "--preset tiny" in command or "--config run.yaml" in command or command.startswith(
                "python main.py --help")
            if wanted and "python main.py" in command and not command.startswith(("torchrun", "accelerate")):
                commands.append(command)
    return commands


def fresh_folder(tmp_path: Path, tiny_root: Path) -> Path:
    """A folder as a new user has it: the tiny assets (built once per session), main.py, and the files the README
    commands read (my_docs/, new_docs.jsonl, dialogues.jsonl)."""
    link_tiny_assets(tmp_path, tiny_root)
    (tmp_path / "main.py").symlink_to(ROOT / "main.py")
    docs = tmp_path / "my_docs"
    docs.mkdir()
    for split, n in (("train", 40), ("validation", 8), ("test", 8)):
        rows = [{"title": f"function {i}", "body": f"def f{i}(x): return x + {i}",
                 "summary_line": f"adds {i} to x"} for i in range(n)]
        (docs / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "new_docs.jsonl").write_text(json.dumps({"title": "t", "body": "def g(y): return y * 2"}) + "\n")
    (tmp_path / "dialogues.jsonl").write_text(json.dumps({"dialogue": "Anna: lunch at 1? Ben: sure"}) + "\n")
    return tmp_path


def run_line(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **{f"LATENTBRIDGE_{k}": v for k, v in CAPS.items()}, "OMP_NUM_THREADS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


def test_the_readme_names_the_commands_this_test_runs():
    commands = readme_commands()
    assert any("--mode train --preset tiny" in c for c in commands)
    assert any("--dataset-name my_docs/" in c and "--mode infer" in c for c in commands)
    assert any("--resume auto" in c for c in commands)


def test_the_readme_lines_that_need_no_model_exit_0(tiny_root, tmp_path):
    folder = fresh_folder(tmp_path, tiny_root)
    for command in [c for c in readme_commands() if any(k in c for k in NEEDS_NO_MODEL)]:
        result = run_line(command, folder)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"


@pytest.mark.slow
def test_every_readme_tiny_command_runs_after_every_other(tiny_root, tmp_path):
    folder = fresh_folder(tmp_path, tiny_root)
    for command in readme_commands():
        result = run_line(command, folder)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
