"""CLI start-up side by side in one run: the Typer CLI against a bare Typer app, tyro and the former click CLI.

Contenders, each doing `--help` and parsing the command line into a printed JSON config:
- ours: `main.py` (src/latentbridge/cli.py, a Typer app generated from Config);
- bare Typer: a generated Typer app with the same options (kind, help text, panel) and nothing else: no
  latentbridge import, no config resolution; its "config" is the parsed options printed as JSON;
- tyro: `tyro.cli(Config)` on the same dataclass, printing the parsed config as JSON;
- click: bench/click_cli.py, the click command the CLI was before it became a Typer app.
`--help` is timed piped (ours prints plain text there) and on a terminal (a pseudo-terminal: ours and Typer
draw Rich panels). Every round runs each command once, the order reversed every other round so a noisy spell
of the machine hits all alike; medians. Targets (issue 19): ours within 1.15 x the bare Typer app for `--help`
and for `--mode config --format json`. `import torch` is the yardstick of issue 2 (`--help` at most 0.15 of it).
tyro is a bench dependency: `pip install -r requirements-bench.txt`. Run by hand:
    python bench/bench_cli.py --runs 15
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

TYRO_CONFIG = """
import dataclasses, json, sys
sys.path.insert(0, "src")
import tyro
from latentbridge.config import Config
print(json.dumps(dataclasses.asdict(tyro.cli(Config)), indent=2))
"""
BARE_TYPER = """
import inspect, json, sys
from typing import Optional
import typer

SPEC = json.loads({spec!r})  # [name, flags, is_bool, default, help, panel] per option, as the generated CLI has them
# Two ideas of what an option declares, as bench rows: a parser for text values; no default (None) for every
# option, where the CLI gives bool flags their Config default (a given bool skips Typer's coercion).
DECLARE = {{"parser": str}} if "--parser" in sys.argv else {{}}
NO_DEFAULTS = "--no-defaults" in sys.argv
sys.argv = [arg for arg in sys.argv if arg not in ("--parser", "--no-defaults")]
parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[bool] if is_bool else Optional[str],
                                default=typer.Option(None if NO_DEFAULTS else default, flags, help=help,
                                                     rich_help_panel=panel, **({{}} if is_bool else DECLARE)))
              for name, flags, is_bool, default, help, panel in SPEC]

def command(**values):
    print(json.dumps(values, indent=2))

command.__signature__ = inspect.Signature(parameters)
command.__doc__ = {description!r}
app = typer.Typer()
app.command()(command)
app()
"""


def bare_typer_spec() -> list[list]:
    """What the bare app declares: each option of ours with its flags, kind, default, help text and panel."""
    import typer.main

    from latentbridge import cli

    command = typer.main.get_command(cli.app)
    return [[f"option_{i}", "/".join([*param.opts, *param.secondary_opts]), param.is_flag, _plain(param.default),
             param.help or "", param.rich_help_panel] for i, param in enumerate(command.params) if param.expose_value]


def _plain(default: object) -> object:
    return default if default is None or isinstance(default, (bool, int, float, str)) else str(default)


def commands(bare: Path) -> dict[str, list[str]]:
    return {
        "main.py --help": ["main.py", "--help"],
        "bare Typer --help": [str(bare), "--help"],
        "tyro --help": ["-c", TYRO_CONFIG, "--help"],
        "click CLI --help": ["bench/click_cli.py", "--help"],
        "main.py --help, on a terminal": ["main.py", "--help"],
        "bare Typer --help, on a terminal": [str(bare), "--help"],
        "main.py --mode config --format json": ["main.py", "--mode", "config", "--format", "json"],
        "bare Typer: parse, print json": [str(bare)],
        "tyro: parse, print json": ["-c", TYRO_CONFIG],
        "click CLI --mode config --format json": ["bench/click_cli.py", "--mode", "config", "--format", "json"],
        "bare Typer, options with parser=str: parse, print json": [str(bare), "--parser"],
        "bare Typer, no option with a default: parse, print json": [str(bare), "--no-defaults"],
        "main.py --mode config --preset tiny": ["main.py", "--mode", "config", "--preset", "tiny"],
        "main.py: complete `--learning-`": ["main.py"],
        "import typer": ["-c", "import typer"],
        "import typer and its pydantic adapters": ["-c", "import typer, typer._adapters"],
        "import torch": ["-c", "import torch"],
    }


COMPLETION_ENV = {"_LATENTBRIDGE_COMPLETE": "complete_bash", "COMP_WORDS": "latentbridge --learning-", "COMP_CWORD": "1"}
BASELINE = {"main.py --help": "bare Typer --help", "main.py --help, on a terminal": "bare Typer --help, on a terminal",
            "main.py --mode config --format json": "bare Typer: parse, print json"}
ALSO = {"main.py --help": ("tyro --help", "click CLI --help"),
        "main.py --mode config --format json": ("tyro: parse, print json", "click CLI --mode config --format json",
                                                "bare Typer, options with parser=str: parse, print json",
                                                "bare Typer, no option with a default: parse, print json")}
# Where a run's time goes, in one fresh process (ms): building the app, Typer's click command, importing the
# pydantic adapters, and building one per option (what Typer does on every run, whether or not it was given).
BREAKDOWN = """
import json, sys, time
sys.path.insert(0, "src")
marks = [time.perf_counter()]
import typer.main
marks.append(time.perf_counter())
import latentbridge.config_sources, latentbridge.modes
marks.append(time.perf_counter())
from latentbridge import cli
marks.append(time.perf_counter())
command = typer.main.get_command(cli.app)
marks.append(time.perf_counter())
import typer._adapters
marks.append(time.perf_counter())
for param in command.params:
    param.get_runtime_param()
marks.append(time.perf_counter())
cli.build_app()
marks.append(time.perf_counter())
steps = ["import typer", "import latentbridge's config and modes", "import latentbridge.cli (builds the app's signature)",
         "typer.main.get_command (click params from the signature)", "import typer._adapters (pydantic)",
         f"one pydantic adapter per option ({len(command.params)})", "build_app again in the same process"]
print(json.dumps({step: (b - a) * 1000 for step, a, b in zip(steps, marks, marks[1:])}))
"""


def seconds(args: list[str], terminal: bool, env: dict[str, str]) -> float:
    """Wall time of `python *args`, its output piped to nowhere or drawn on a pseudo-terminal of 100 x 50."""
    start = time.perf_counter()
    if not terminal:
        subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env=env)
        return time.perf_counter() - start
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=follower, env={**env, "COLUMNS": "100"})
    os.close(follower)
    while select.select([leader], [], [], 30)[0]:  # drain it: a full terminal buffer would block the writer
        try:
            if not os.read(leader, 65536):
                break
        except OSError:  # the writer closed its side
            break
    os.close(leader)
    if process.wait() != 0:
        raise subprocess.CalledProcessError(process.returncode, args)
    return time.perf_counter() - start


def measure(runs: int, table: dict[str, list[str]]) -> dict[str, float]:
    """Medians of `runs` rounds, after one uncounted round that writes every contender's bytecode cache (as an
    installed package or a second run has it; this environment may say PYTHONDONTWRITEBYTECODE)."""
    unset = ("NO_COLOR", "TERM", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in unset} | {"TERM": "xterm-256color"}
    samples: dict[str, list[float]] = {name: [] for name in table}
    for round_ in range(-1, runs):
        names = list(table) if round_ % 2 == 0 else list(reversed(table))
        for name in names:
            extra = COMPLETION_ENV if "complete" in name else {}
            took = seconds(table[name], "terminal" in name, {**env, **extra})
            if round_ >= 0:
                samples[name].append(took)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(median: dict[str, float], runs: int) -> None:
    print(f"| command | median of {runs} (s) | ratio to the bare Typer app | ratio to `import torch` |")
    print("|---|---|---|---|")
    for name, value in median.items():
        bare = next((base for ours, base in BASELINE.items() if name in (ours, *ALSO.get(ours, ()))), None)
        ratio = f"{value / median[bare]:.2f}" if bare and bare != name else ""
        print(f"| `{name}` | {value:.3f} | {ratio} | {value / median['import torch']:.3f} |")


def breakdown(runs: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rounds = [json.loads(subprocess.run([sys.executable, "-c", BREAKDOWN], cwd=ROOT, check=True, env=env,
                                        capture_output=True, text=True).stdout) for _ in range(runs)]
    print(f"\n| step, in one fresh process | median of {runs} (ms) |\n|---|---|")
    for step in rounds[0]:
        print(f"| {step} | {statistics.median(r[step] for r in rounds):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    from latentbridge.cli import DESCRIPTION

    with tempfile.TemporaryDirectory(prefix="latentbridge-bench-") as folder:
        bare = Path(folder) / "bare_typer.py"
        bare.write_text(BARE_TYPER.format(spec=json.dumps(bare_typer_spec()), description=DESCRIPTION))
        report(measure(runs, commands(bare)), runs)
    breakdown(runs)


if __name__ == "__main__":
    main()
