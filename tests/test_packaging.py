"""`pip install .` into a fresh virtual environment gives a working `latentbridge` console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _copy_project(to: Path) -> Path:
    """What `pip install .` reads, copied: building writes build/ and *.egg-info beside the sources."""
    to.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, to / name)
    shutil.copytree(ROOT / "src", to / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return to


def test_pip_install_gives_a_working_console_script(tmp_path):
    project = _copy_project(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # import the installed copy, not a checkout
    venv.create(tmp_path / "venv", with_pip=True)
    python, script = tmp_path / "venv" / "bin" / "python", tmp_path / "venv" / "bin" / "latentbridge"
    site = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True, env=env).strip())
    # The wheel is built with this environment's setuptools and the dependencies come from this environment
    # (a .pth line), so only the package itself is installed and nothing is downloaded.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(project)], check=True, cwd=tmp_path, env=env)
    wheel = next((tmp_path / "dist").glob("latentbridge-*.whl"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, env=env)

    where = subprocess.check_output([python, "-c", "import latentbridge; print(latentbridge.__file__)"],
                                    text=True, cwd=tmp_path, env=env).strip()
    assert Path(where).is_relative_to(site)
    run = subprocess.run([script, "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Usage: latentbridge") and "--learning-rate" in run.stdout
    from_checkout = subprocess.run([sys.executable, "main.py", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert run.stdout == from_checkout.stdout  # `latentbridge --help` is `python main.py --help`
    config = subprocess.run([script, "--mode", "config", "--format", "json", "--learning-rate", "5e-5"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert config.returncode == 0 and '"learning_rate": 5e-05' in config.stdout, config.stderr
