"""`--mode eval`: ROUGE and latent diagnostics of the hand-off model on a split of `dataset_name`.

    python main.py --mode eval --preset tiny                       # test split
    python main.py --mode eval --preset tiny --split validation --baselines --output-file eval.json

The report (src/latentbridge/evaluation/report.py) goes to --output-file or `output_dir/eval_<split>.json`, as
Markdown beside it (same name, `.md`), and as tables to the terminal. `--baselines` adds the constant and direct baselines
(src/latentbridge/evaluation/baselines.py); the direct one fine-tunes a fresh copy of the decoder, which takes as
long as the latent path's adapter fine-tuning stage. Where the decoder's tokenizer has a chat template, the
zero-shot baseline is scored too: the untrained decoder prompted with a one-line instruction and the input, what
a user would get without latentbridge.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any, Optional

from accelerate.utils import set_seed

from latentbridge import recipe
from latentbridge.config import Config
from latentbridge.data.sources import ColumnPlan, dialogue_columns, load_dialogue_split
from latentbridge.errors import UserError
from latentbridge.evaluation.baselines import (ZERO_SHOT_INSTRUCTION, DirectTraining, adapter_stage_steps,
                                               constant_baseline, generate_direct, generate_zero_shot,
                                               has_chat_template, train_direct_baseline)
from latentbridge.evaluation.evaluate import evaluate_model
from latentbridge.evaluation.io import write_json
from latentbridge.evaluation.trained_model import (SAMPLING_FIELDS, TrainedModel, describe_training, load_handoff,
                                            same_dataset)
from latentbridge.evaluation.report import build_report, markdown_report, render_report
from latentbridge.evaluation.rouge import rouge_scores, scorer_description
from latentbridge.files import write_text_atomic
from latentbridge.models.decoder import load_decoder_backbone
from latentbridge.modes import ModeOptions, RunResult, model_to_load
from latentbridge.ui.cache_progress import console_progress

N_SAMPLES = 5


def run(config: Config, options: ModeOptions) -> RunResult:
    model = load_handoff(config, model_to_load(config, options), options.sources)
    refuse_another_dataset(model)
    report = evaluate(model, options.split, options.baselines)
    path = options.output_file or Path(model.config.output_dir) / f"eval_{report['split']}.json"
    write_json(Path(path), report)
    markdown = Path(path).with_suffix(".md")
    write_text_atomic(markdown, markdown_report(report))
    render_report(report)
    print(f"Report written to {path} and {markdown}.", file=sys.stderr)
    return RunResult("eval", model_path=model.path, report=report)


def say(text: str) -> None:
    """What eval is doing now, on stderr (the report's tables go to stdout)."""
    print(text, file=sys.stderr, flush=True)


def column_names(plan: ColumnPlan) -> dict[str, str]:
    """The trained columns, named in the report's sample headings."""
    source = f"template {plan.input_template!r}" if plan.input_template else str(plan.input_column)
    return {"input": source, "target": plan.target_column}


def refuse_another_dataset(model: TrainedModel) -> None:
    """A model is scored on the dataset it was trained on: another one would measure a task it never learned."""
    trained = model.trained
    if trained is not None and not same_dataset(trained.dataset_name, model.config.dataset_name):
        raise UserError(f"--mode eval: the model {model.path} was trained on {describe_training(trained.to_dict())}, "
                        f"not on {model.config.dataset_name}. Evaluate it on its own dataset (leave out "
                        "--dataset-name), or name a model trained on that dataset with --checkpoint.")


def evaluate(loaded: TrainedModel, split: str | None = None, baselines: bool = False) -> dict[str, Any]:
    """The report dict for `loaded` on `split` (default test_split)."""
    c = loaded.config
    split = split or c.test_split
    spec = recipe.data_spec(c, ("dialogue",))
    columns = column_names(dialogue_columns(spec, split)[1])
    examples = load_dialogue_split(spec, split, c.eval_max_samples).examples
    if not examples:
        raise UserError(f"Split {split!r} of {c.dataset_name} has no (dialogue, summary) pairs to evaluate; "
                        "choose another with --split.")
    dialogues, references = [e.input_text for e in examples], [e.target_text for e in examples]
    say(f"eval: the latent pipeline and the gold latents on {len(examples)} examples of {split!r}")
    result = evaluate_model(loaded.model, dialogues, references, max_seq_len=c.max_seq_len,
                            max_target_len=c.max_target_len, sampling=recipe.sampling_spec(c), batch_size=c.batch_size,
                            seed=c.seed)
    systems: dict[str, dict[str, Any]] = dict(result["rouge"])
    seconds = {"latent_and_reconstruction": round(result["seconds"], 2)}
    notes: list[str] = []
    extra: dict[str, list[str]] = {}
    if baselines:
        start = time.perf_counter()
        train = load_dialogue_split(spec, c.train_split, recipe.stage_caps(c, "finetune_adapter")[0]).examples
        if not train:
            raise UserError(f"The baselines need training pairs, and split {c.train_split!r} of {c.dataset_name} "
                            "has none (--train-split).")
        say(f"constant baseline: the training summary that scores best on {split!r}")
        constant = constant_system(train, references)
        extra["constant"] = [constant.summary] * len(references)
        systems["constant"] = {**rouge_scores(extra["constant"], references).as_dict(), "summary": constant.summary,
                               "pool_size": constant.pool_size, "pool_seed": constant.pool_seed}
        seconds["constant"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        direct, outputs, note = direct_system(loaded, train, dialogues)
        if direct is not None:
            extra["direct"] = outputs
            systems["direct"] = {**rouge_scores(outputs, references).as_dict(), **direct}
        if note:
            notes.append(note)
        seconds["direct"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        zero_shot, note = zero_shot_system(loaded, dialogues)
        if zero_shot is not None:
            extra["zero_shot"] = zero_shot
            systems["zero_shot"] = {**rouge_scores(zero_shot, references).as_dict(), "instruction": ZERO_SHOT_INSTRUCTION,
                                    "trains": "nothing (the decoder prompted through its chat template)"}
            seconds["zero_shot"] = round(time.perf_counter() - start, 2)
        else:
            notes.append(note)
    samples = []
    for i, e in enumerate(examples[:N_SAMPLES]):
        row = {"id": e.id, "input": e.input_text, "reference": e.target_text,
               "latent": result["outputs"].latent[i]}
        if result["outputs"].reconstruction:
            row["reconstruction"] = result["outputs"].reconstruction[i]
        row.update({name: outs[i] for name, outs in extra.items()})
        samples.append(row)
    return build_report(dataset=c.dataset_name, split=split, n_examples=len(examples), checkpoint=loaded.describe(),
                        scorer=scorer_description(), sampling={name: getattr(c, name) for name in SAMPLING_FIELDS},
                        systems=systems, latent_metrics=result["latent_metrics"], prefix_use=result["prefix_use"],
                        samples=samples, columns=columns, notes=notes, seconds=seconds)


def constant_system(train: list, references: list[str]):
    return constant_baseline([e.target_text for e in train], references)


def direct_steps(c: Config, n_train: int) -> int:
    """The latent path's adapter fine-tuning (stage 4) optimizer steps for `n_train` pairs."""
    return adapter_stage_steps(n_train, c.stage_batch_size("finetune_adapter"), c.stage_epochs("finetune_adapter"),
                               c.gradient_accumulation_steps)


def zero_shot_system(loaded: TrainedModel, dialogues: list[str]) -> tuple[Optional[list[str]], Optional[str]]:
    """(outputs of the untrained decoder prompted with the instruction and each input, None) where its tokenizer
    has a chat template, else (None, a note saying why it was skipped)."""
    c = loaded.config
    spec = dataclasses.replace(recipe.decoder_spec(c), unfrozen_layers=0, lora=None)
    model, tokenizer = load_decoder_backbone(spec, loaded.model.attn_implementation)
    if not has_chat_template(tokenizer):
        return None, "zero-shot baseline skipped: the decoder's tokenizer has no chat template to prompt it with"
    device = str(loaded.model.device)
    set_seed(c.seed)
    return generate_zero_shot(model, tokenizer, dialogues, recipe.sampling_spec(c), name=c.gpt2_model,
                              max_input_len=c.max_seq_len, batch_size=c.batch_size, device=device), None


def direct_system(loaded: TrainedModel, train: list, dialogues: list[str]) -> tuple[dict | None, list[str], str | None]:
    """Fine-tune a fresh copy of the decoder on the training pairs and summarise `dialogues` with it."""
    c = loaded.config
    steps = direct_steps(c, len(train))
    if steps == 0:
        return None, [], "direct baseline skipped: the adapter fine-tuning stage has 0 epochs, so 0 steps to match"
    settings = DirectTraining(steps=steps, lr=recipe.direct_baseline_rate(c), seed=c.seed,
                              batch_size=c.stage_batch_size("finetune_adapter"),
                              accumulation=c.gradient_accumulation_steps, warmup_steps=c.warmup_steps,
                              weight_decay=c.weight_decay, max_grad_norm=c.max_grad_norm, max_input_len=c.max_seq_len,
                              max_target_len=c.max_target_len)
    device = str(loaded.model.device)
    spec = dataclasses.replace(recipe.decoder_spec(c), unfrozen_layers=0)
    model, tokenizer = load_decoder_backbone(spec, loaded.model.attn_implementation)
    say(f"direct baseline: fine-tuning a fresh copy of the decoder on {len(train)} pairs for {steps} steps "
        "(as many as the adapter fine-tuning stage), then summarising")
    progress = console_progress(use_rich=c.use_tui, every_s=2.0)
    progress.start("direct baseline: training", steps)
    set_seed(c.seed)
    result = train_direct_baseline(model, tokenizer, [(e.input_text, e.target_text) for e in train], settings,
                                   name=c.gpt2_model, device=device, on_step=lambda step, loss: progress.advance(1))
    progress.finish()
    say(f"direct baseline: summarising {len(dialogues)} examples")
    set_seed(c.seed)
    outputs = generate_direct(model, tokenizer, dialogues, recipe.sampling_spec(c), name=c.gpt2_model,
                              max_input_len=c.max_seq_len, batch_size=c.batch_size, device=device)
    details = {"steps": result.steps, "lr": settings.lr, "batch_size": settings.batch_size,
               "accumulation": settings.accumulation, "train_pairs": len(train), "examples_seen": result.examples_seen,
               "final_train_loss": result.final_loss, "trains": "every decoder parameter"}
    return details, outputs, None
