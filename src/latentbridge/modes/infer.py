"""`--mode infer`: transform texts with the trained hand-off model.

    python main.py --mode infer --preset tiny --text "Anna: lunch at 1? Ben: sure"
    python main.py --mode infer --preset tiny --input-file dialogues.jsonl --output-file out.jsonl
    cat dialogues.txt | python main.py --mode infer --preset tiny --do-sample --seed 3

The model and its config come from `checkpoint_dir/handoff_best_model_filename` (or --checkpoint), through
the Python API (`TrainedModel`, src/latentbridge/evaluation/loading.py); sampling flags (temperature, top_p,
top_k, do_sample, max_generation_length, seed) apply on top. Inputs and outputs:
src/latentbridge/evaluation/io.py. Texts run in batches of the config's batch_size.
"""

from __future__ import annotations

import sys

from latentbridge.config import Config
from latentbridge.evaluation.io import read_inputs, write_outputs
from latentbridge.evaluation.loading import load_handoff
from latentbridge.modes import ModeOptions


def run(config: Config, options: ModeOptions) -> int:
    items = read_inputs(options.text, options.input_file)  # bad input fails before the model loads
    model = load_handoff(config, options.checkpoint, options.sources)
    summaries = model.generate([i.text for i in items], where=[i.where for i in items])
    write_outputs(items, summaries, options.output_file)
    if options.output_file is not None:
        print(f"Wrote {len(summaries)} summaries to {options.output_file}.", file=sys.stderr)
    return 0
