"""`--mode infer`: transform texts with the trained hand-off model.

    python main.py --mode infer --preset tiny --text "Anna: lunch at 1? Ben: sure"
    python main.py --mode infer --preset tiny --input-file dialogues.jsonl --output-file out.jsonl
    cat dialogues.txt | python main.py --mode infer --preset tiny --do-sample --seed 3

The model and its config come from `checkpoint_dir/handoff_best_model_filename` (or --checkpoint);
sampling flags (temperature, top_p, top_k, do_sample, max_generation_length, seed) apply on top. A JSON
Lines record's text is read like the training input: the checkpoint's `dataset_input_field` or
`dataset_input_template`, unless given again.
Inputs and outputs: src/latentbridge/evaluation/io.py. Texts run in batches of the config's batch_size.
"""

from __future__ import annotations

import sys

from latentbridge.config import Config
from latentbridge.modes import ModeOptions


def run(config: Config, options: ModeOptions) -> int:
    from latentbridge.evaluation.io import InputColumns, read_inputs, write_outputs
    from latentbridge.evaluation.loading import load_handoff, read_handoff

    handoff = read_handoff(config, options.checkpoint, options.sources)
    columns = InputColumns(handoff.config.dataset_input_field, handoff.config.dataset_input_template)
    items = read_inputs(options.text, options.input_file, columns=columns)  # bad input fails before the model builds

    from latentbridge.evaluation.generation import check_lengths, summarize
    from latentbridge.modes.specs import sampling_spec

    loaded = load_handoff(config, options.checkpoint, options.sources, handoff=handoff)
    c = loaded.config
    texts = [i.text for i in items]
    check_lengths(loaded.model.encoder.tokenizer, texts, [i.where for i in items], c.max_seq_len)
    summaries = summarize(loaded.model, texts, max_input_len=c.max_seq_len, sampling=sampling_spec(c),
                          batch_size=c.batch_size, seed=c.seed)
    write_outputs(items, summaries, options.output_file)
    if options.output_file is not None:
        print(f"Wrote {len(summaries)} summaries to {options.output_file}.", file=sys.stderr)
    return 0
