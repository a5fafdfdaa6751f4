"""`--mode infer`: transform texts with the trained hand-off model.

    python main.py --mode infer --preset tiny --text "Anna: lunch at 1? Ben: sure"
    python main.py --mode infer --preset tiny --input-file dialogues.jsonl --output-file out.jsonl
    cat dialogues.txt | python main.py --mode infer --preset tiny --do-sample --seed 3
    python main.py --mode infer --preset tiny --input-file -      # a stream: one JSON line in, one out

The model and its config come from `checkpoint_dir/handoff_best_model_filename` (or --checkpoint), through
the Python API (`TrainedModel`, src/latentbridge/evaluation/trained_model.py); sampling flags (temperature, top_p,
top_k, do_sample, max_generation_length, seed, no_repeat_ngram_size) apply on top. A JSON Lines record's
text is read like the training input: the model's `dataset_input_field` or `dataset_input_template`, unless
given again. Inputs and outputs: src/latentbridge/evaluation/io.py. Texts run in batches of the config's
batch_size.

`--input-file -` keeps the model loaded and answers each line of standard input as it arrives, in order,
one flushed JSON line per request: for many requests, one long-lived process instead of one start-up
(seconds of imports and loading) each. A refused request is answered with its error and the stream goes
on; the exit code is then 2.
"""

from __future__ import annotations

import sys
from typing import IO

from latentbridge.config import Config
from latentbridge.errors import UserError
from latentbridge.evaluation.io import (STREAM, InputColumns, parse_request, read_inputs, request_id, with_texts,
                                        write_json_line, write_outputs)
from latentbridge.evaluation.trained_model import TrainedModel, describe_training, load_handoff
from latentbridge.modes import ModeOptions, RunResult, model_to_load


def run(config: Config, options: ModeOptions) -> RunResult:
    if options.text is None and options.input_file == STREAM:
        return answer_stream(config, options, sys.stdin, sys.stdout)
    items = read_inputs(options.text, options.input_file, columns=None)  # bad input fails before the model loads
    model = load_handoff(config, model_to_load(config, options), options.sources)
    items = texts_as_trained(items, model)
    summaries = model.generate([i.text for i in items], where=[i.where for i in items])
    write_outputs(items, summaries, options.output_file)
    if options.output_file is not None:
        print(f"Wrote {len(summaries)} summaries to {options.output_file}.", file=sys.stderr)
    return RunResult("infer", model_path=model.path, outputs=tuple(summaries))


def answer_stream(config: Config, options: ModeOptions, requests: IO[str], answers: IO[str]) -> RunResult:
    """Answer each non-blank line of `requests` on `answers` as it arrives; the result counts the refused ones."""
    if options.output_file is not None:
        raise UserError("--input-file - answers on standard output, one JSON line per request: leave out "
                        "--output-file (redirect standard output instead).")
    model = load_handoff(config, model_to_load(config, options), options.sources)
    columns = input_columns(model)
    refused, index = 0, 0
    for number, line in enumerate(iter(requests.readline, ""), 1):  # readline: no read-ahead past a line
        if not line.strip():
            continue
        ident = request_id(line, str(index))
        try:
            item = parse_request(line, number, str(index), columns)
            write_json_line(answers, {"id": ident, "summary": model.generate([item.text], where=[item.where])[0]})
        except UserError as error:
            refused += 1
            write_json_line(answers, {"id": ident, "error": str(error)})
        index += 1
    return RunResult("infer", model_path=model.path, refused=refused)


def texts_as_trained(items: list, model: TrainedModel) -> list:
    """The records' texts from the column the model was trained on; a record without it is refused naming the
    model's dataset and columns (never a guess at another column)."""
    try:
        return with_texts(items, input_columns(model))
    except UserError as error:
        trained = model.trained.to_dict() if model.trained is not None else model.config.to_dict()
        raise UserError(f"{error} The model {model.path} was trained on {describe_training(trained)}: give it "
                        "records with that column, or load a model trained on this data (--dataset-name or "
                        "--checkpoint).") from None


def input_columns(model: TrainedModel) -> InputColumns:
    """Where a JSON Lines record's text is: where the model's training data had its input."""
    return InputColumns(model.config.dataset_input_field, model.config.dataset_input_template)
