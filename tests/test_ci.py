""".ci/run, CI's one script: it installs from the repo's own requirement files (the README's test set-up) into a
fresh virtual environment, runs the default suite, then the slow one, and stops at the first phase that fails.
The script runs for real in a copy of the repo, with `python3`, `python` and `pip` stand-ins that record each call
(the real phases take minutes); the slow phase is checked to hold the paths that break quietly."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = "pip install -r requirements.txt -r requirements-dev.txt -r requirements-trackers.txt"
PHASES = [INSTALL, "python -m pytest", "python -m pytest -m slow"]
# stands in for `python`/`pip` inside the virtual environment: records its call, fails when told to
STAND_IN = textwrap.dedent("""\
    #!/usr/bin/env bash
    call="$(basename "$0") $*"
    echo "$call" >> "$CI_CALLS"
    [ "$call" != "$CI_FAIL" ]
""")
# stands in for the system `python3`: `python3 -m venv .venv` makes a .venv whose activate puts the stand-ins first
SYSTEM_PYTHON = textwrap.dedent("""\
    #!/usr/bin/env bash
    echo "python3 $*" >> "$CI_CALLS"
    mkdir -p "$3/bin" && echo "export PATH=\\"$CI_STAND_INS:\\$PATH\\"" > "$3/bin/activate"
""")
# the slow tests that cover each path the default run leaves out: file -> test
SLOW_PATHS = {
    "DDP": ("tests/training/test_distributed.py", "test_two_cpu_processes_train_and_only_rank0_reports"),
    "FSDP": ("tests/training/test_sharding.py",
             "test_sharded_training_matches_ddp_resumes_exactly_and_writes_whole_checkpoints"),
    "sharded preprocess": ("tests/data/encoding/test_shards_torchrun.py", "test_two_processes_build_the_cache_one_process_builds"),
    "kill -9 resume": ("tests/reliability/test_kill_resume.py", "test_kill9_then_resume_matches_an_uninterrupted_run"),
    "torch.compile": ("tests/models/test_compile.py", "test_compiled_middle_matches_eager_and_keeps_its_state_dict_keys"),
}


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def run_ci(tmp_path: Path, fail: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    """.ci/run in a copy holding only the script, with the stand-ins; the result and the calls made, in order."""
    repo, stand_ins, system = tmp_path / "repo", tmp_path / "venv-bin", tmp_path / "system-bin"
    for folder in (repo / ".ci", stand_ins, system):
        folder.mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    for name in ("python", "pip"):
        write_script(stand_ins / name, STAND_IN)
    write_script(system / "python3", SYSTEM_PYTHON)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{system}{os.pathsep}{os.environ['PATH']}", "CI_CALLS": str(calls),
           "CI_STAND_INS": str(stand_ins), "CI_FAIL": fail}
    result = subprocess.run(["bash", str(repo / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    return result, calls.read_text().splitlines()


def test_ci_makes_a_fresh_venv_installs_the_readme_requirements_then_runs_both_phases(tmp_path):
    result, calls = run_ci(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls == ["python3 -m venv .venv", "python -m pip install -q --upgrade pip", *PHASES]
    assert f"{INSTALL} && python -m pytest" in (ROOT / "README.md").read_text()  # the README's test set-up
    assert all((ROOT / name).is_file() for name in INSTALL.split()[3::2])  # the repo's own files


@pytest.mark.parametrize("failing", PHASES[:2])
def test_ci_stops_at_the_first_phase_that_fails(tmp_path, failing):
    result, calls = run_ci(tmp_path, fail=failing)
    assert result.returncode != 0
    assert calls[-1] == failing  # nothing after it ran


def slow_tests(path: Path) -> set[str]:
    """The test functions of `path` marked `@pytest.mark.slow`."""
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d) == "pytest.mark.slow" for d in node.decorator_list)}


@pytest.mark.parametrize("path_name", SLOW_PATHS)
def test_the_slow_phase_holds_a_test_of(path_name):
    file, test = SLOW_PATHS[path_name]
    assert test in slow_tests(ROOT / file), f"{file}::{test} ({path_name}) is gone or no longer marked slow"
