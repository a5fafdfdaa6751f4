"""`--mode infer` start-up next to loading the same models by hand, and a stream of requests: medians, one run.

Target (issue 13): `main.py --mode infer` on one input at most 1.5 x `import torch; import transformers` plus
loading the same backbones and the hand-off file by hand (from_pretrained, safetensors). Many requests go
through one long-lived `--input-file -` process instead of one start-up each. The model is a freshly
initialised tiny one written as a hand-off file (start-up does not depend on training). Run by hand:
    python bench/bench_infer.py --runs 7 --requests 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

sys.path.insert(0, str(ROOT / "bench"))

from common import alternate, load_average, ratio  # noqa: E402

from latentbridge import recipe  # noqa: E402
from latentbridge.assets import ensure_tiny_assets  # noqa: E402
from latentbridge.config import preset_config  # noqa: E402
from latentbridge.models.bridge import build_model  # noqa: E402
from latentbridge.models.runtime import resolve_runtime  # noqa: E402
from latentbridge.training.checkpoint import write_model_file  # noqa: E402

TEXT = "Anna: are we still on for lunch at one? Ben: sure, see you at the cafe."
BY_HAND = """
import sys
import torch, transformers
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
encoder, decoder, handoff = sys.argv[1:]
AutoModel.from_pretrained(encoder), AutoTokenizer.from_pretrained(encoder)
AutoModelForCausalLM.from_pretrained(decoder), AutoTokenizer.from_pretrained(decoder)
load_file(handoff)
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error"}


def write_handoff(folder: Path) -> tuple[Path, Path, Path]:
    """A fresh tiny model saved as the hand-off file; (encoder folder, decoder folder, model file)."""
    assets = folder / "assets"
    ensure_tiny_assets(assets, seed=0)
    config = preset_config("tiny", tiny_assets_dir=str(assets), modernbert_model=str(assets / "models/modernbert"),
                           gpt2_model=str(assets / "models/gemma3"), checkpoint_dir=str(folder / "ck"))
    model = build_model(recipe.model_spec(config, resolve_runtime(recipe.runtime_request(config))))
    path = write_model_file(Path(config.checkpoint_dir) / config.handoff_best_model_filename,
                            model.trainable_state_dict(), config=config.to_dict(),
                            fingerprint=recipe.checkpoint_fingerprint(config), step=0, stage="init")
    return Path(config.modernbert_model), Path(config.gpt2_model), path


def seconds(args: list[str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, input=stdin, text=True, env=ENV,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        encoder, decoder, handoff = write_handoff(Path(tmp))
        infer = ["main.py", "--mode", "infer", "--preset", "tiny", "--checkpoint", str(handoff)]
        stream = "".join(json.dumps({"id": i, "dialogue": TEXT}) + "\n" for i in range(args.requests))
        commands = {
            "infer, one input": (infer + ["--text", TEXT], None),
            "by hand: import torch, transformers; load the models": (["-c", BY_HAND, str(encoder), str(decoder),
                                                                      str(handoff)], None),
            f"infer --input-file -, {args.requests} requests": (infer + ["--input-file", "-"], stream),
            "import torch": (["-c", "import torch"], None),
        }
        runs = alternate({name: (lambda c=command, i=stdin: seconds(c, i)) for name, (command, stdin) in commands.items()},
                         args.runs)  # the order rotated each round: a noisy spell hits every command alike
    samples = {name: t["seconds"] for name, t in runs.items()}
    median = {name: statistics.median(values) for name, values in samples.items()}
    by_hand = samples["by hand: import torch, transformers; load the models"]
    print(f"{args.runs} rounds after one untimed run of each, {load_average()}")
    print(f"| command | median of {args.runs} (s) | ratio to loading by hand: median/median (rounds min / median / max) |")
    print("|---|---|---|")
    for name, value in median.items():
        print(f"| {name} | {value:.2f} | {ratio(samples[name], by_hand).describe()} |")
    one = median["infer, one input"]
    streamed = median[f"infer --input-file -, {args.requests} requests"]
    print(f"\n{args.requests} requests: one process each would take {args.requests * one:.1f} s; the stream took "
          f"{streamed:.1f} s ({(streamed - one) / (args.requests - 1) * 1000:.0f} ms per request after the first).")


if __name__ == "__main__":
    main()
