"""`--mode doctor`: is this machine ready for the configured run? Reads only; downloads and writes nothing.

Reports the software stack, the attention backend and precision the run would get, parameter counts per
component, a training-memory estimate for the configured batch and lengths, whether the cache, checkpoint
and output folders are writable, free disk, whether the models and datasets can be reached, and the checks
loading makes on the data (split names, input/target columns, the first rows of each split, read as a stream).
Exit code 0 when nothing blocks the run, 1 otherwise (each problem is listed).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from latentbridge.config import Config
from latentbridge.modes import ModeOptions

GIB = 1024 ** 3


@dataclass
class Report:
    sections: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # section -> (item, value, status)
    problems: list[str] = field(default_factory=list)

    def add(self, section: str, item: str, value: str, status: str = "ok") -> None:
        self.sections.setdefault(section, []).append((item, value, status))
        if status == "problem":
            self.problems.append(f"{section} / {item}: {value}")


def run(config: Config, options: ModeOptions) -> int:
    report = build_report(config)
    if options.format == "table":
        print_report(report)
    else:
        data = {s: [{"item": i, "value": v, "status": st} for i, v, st in rows] for s, rows in report.sections.items()}
        data["problems"] = report.problems
        text = json.dumps(data, indent=2)
        if options.format == "yaml":
            import yaml

            text = yaml.safe_dump(json.loads(text), sort_keys=False)
        print(text)
    return 1 if report.problems else 0


def build_report(c: Config) -> Report:
    report = Report()
    _environment(report)
    device, dtype = _runtime(report, c)
    decoder_cfg, counts = _models(report, c)
    _memory(report, c, decoder_cfg, counts, dtype, device)
    _storage(report, c)
    _data(report, c)
    return report


# ------------------------------------------------------------------------------------------ sections

def _environment(r: Report) -> None:
    import accelerate
    import torch
    import transformers

    from latentbridge.models.backends import flash_attn_available

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


def _runtime(r: Report, c: Config) -> tuple[str, Any]:
    from latentbridge.models.backends import resolve_attention, resolve_device, resolve_dtype

    device, note = resolve_device(c.device)
    r.add("runtime", "device", f"{device} (requested {c.device})" + (f" - {note}" if note else ""),
          "note" if note else "ok")
    dtype, note = resolve_dtype(c.use_bf16, c.use_fp16, device)
    r.add("runtime", "precision", str(dtype).replace("torch.", "") + (f" - {note}" if note else ""),
          "note" if note else "ok")
    attn, note = resolve_attention(c.attn_implementation, device, dtype)
    r.add("runtime", "attention", attn + (f" - {note}" if note else ""), "note" if note else "ok")
    r.add("runtime", "gradient checkpointing / compile",
          f"{c.use_gradient_checkpointing} / {c.use_torch_compile} ({c.torch_compile_mode})")
    return device, dtype


def _under_tiny_assets(c: Config, path: str) -> bool:
    if not c.tiny_assets_dir:
        return False
    try:
        Path(path).resolve().relative_to(Path(c.tiny_assets_dir).resolve())
        return True
    except ValueError:
        return False


def _backbone_config(r: Report, c: Config, field_name: str, kind: str) -> Optional[Any]:
    from latentbridge.models import tiny
    from latentbridge.models.memory import locate_config

    name = getattr(c, field_name)
    cfg, where = locate_config(name)
    status = "ok"
    if cfg is None and _under_tiny_assets(c, name):
        from latentbridge.assets import CORPUS_VOCAB_SIZE
        from latentbridge.modes.preprocess import uses_bundled_corpus

        build = tiny.modernbert_config if kind == "encoder" else tiny.gemma3_config
        if uses_bundled_corpus(c):
            cfg, where = build(tiny.TINY_VOCAB_SIZE), "tiny model, built on first use (tiny_assets_dir)"
        else:
            hidden = c.modernbert_hidden_dim if kind == "encoder" else c.gpt2_hidden_dim
            cfg, where = build(CORPUS_VOCAB_SIZE, hidden), ("tiny model, built on first use from the training texts "
                                                            "of dataset_name (tiny_assets_dir/corpora)")
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


def _models(r: Report, c: Config) -> tuple[Optional[Any], dict[str, Any]]:
    from latentbridge.models.memory import part_counts
    from latentbridge.modes.specs import model_spec

    encoder_cfg = _backbone_config(r, c, "modernbert_model", "encoder")
    decoder_cfg = _backbone_config(r, c, "gpt2_model", "decoder")
    counts = part_counts(model_spec(c, device="cpu"), encoder_cfg, decoder_cfg)
    for part, count in counts.items():
        if count is None:
            r.add("parameters", part, "unknown (no config)", "note")
        else:
            r.add("parameters", part, f"{_m(count.total)} total, {_m(count.trainable)} trainable at most, "
                                      f"{_m(count.total - count.trainable)} always frozen")
    return decoder_cfg, counts


def _memory(r: Report, c: Config, decoder_cfg: Any, counts: dict[str, Any], dtype: Any, device: str) -> None:
    import torch

    from latentbridge.models.memory import estimate_adapter_stage_memory

    if decoder_cfg is None or any(v is None for v in counts.values()):
        r.add("memory", "estimate", "unavailable without both model configs", "note")
        return
    batch = max(c.stage_batch_size("pretrain_adapter"), c.stage_batch_size("finetune_adapter"))
    est = estimate_adapter_stage_memory(counts, decoder_cfg, batch, c.prefix_len, c.max_target_len,
                                        dtype != torch.float32,
                                        c.use_gradient_checkpointing)
    label = f"adapter stages, batch {batch}, prefix {c.prefix_len} + target {c.max_target_len}"
    for what, gib in est.rows:
        r.add("memory", what, f"{gib:.2f} GiB")
    status = "ok"
    total = f"{est.total_gib:.2f} GiB ({label}; rough, within ~1.5x)"
    if device == "cuda":
        have = torch.cuda.get_device_properties(0).total_memory / GIB
        total += f" of {have:.1f} GiB on the GPU"
        status = "problem" if est.total_gib > have else "ok"
    r.add("memory", "total", total, status)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _writable(path: Path) -> tuple[bool, str]:
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
    from latentbridge.modes.preprocess import PRETRAIN_FIELDS, data_spec, replaced_by_own_texts

    spec = data_spec(c)
    replaced = [PRETRAIN_FIELDS[name] for name in replaced_by_own_texts(c)]
    sources = {s.field: s for s in spec.pretrain}
    for field_name in ("dataset_name", "wikitext_dataset", "arxiv_dataset", "english_pretrain_dataset"):
        name = getattr(c, field_name)
        if field_name in replaced:
            r.add("data", field_name, f"{name}: not used; stages 1-2 pretrain on the texts of dataset_name (the "
                                      "bundled pretraining text belongs to the bundled dialogues)", "note")
            continue
        if Path(name).expanduser().exists():
            r.add("data", field_name, f"{name}: local path")
        elif _under_tiny_assets(c, name):
            r.add("data", field_name, f"{name}: bundled corpus, written on first use (tiny_assets_dir)")
            continue
        elif _in_hub_cache(name):
            r.add("data", field_name, f"{name}: in the local Hugging Face datasets cache")
        else:
            r.add("data", field_name, f"{name}: not on this machine; needs a hub connection (none here) or a "
                                      f"local copy (set --{field_name.replace('_', '-')} to a file or folder)",
                  "problem")
            continue
        _check_rows(r, c, spec, field_name, sources.get(field_name))


def _check_rows(r: Report, c: Config, spec: Any, field_name: str, source: Any) -> None:
    """The split, column and row checks that loading makes, on a sample read as a stream."""
    from latentbridge.data.sources import check_dialogue_data, check_pretrain_source
    from latentbridge.errors import UserError

    try:
        checks = (check_dialogue_data(spec, (c.train_split, c.validation_split, c.test_split))
                  if field_name == "dataset_name" else [check_pretrain_source(spec, source)])
    except UserError as error:
        r.add("data", f"{field_name} rows", str(error), "problem")
        return
    for check in checks:
        item = f"{field_name} {check.name}" if field_name == "dataset_name" else f"{field_name} rows"
        if check.problem:
            r.add("data", item, check.problem, "problem")
        else:
            r.add("data", item, f"{check.columns}; {check.sampled} rows sampled, {check.without_text} without text",
                  "note" if check.without_text else "ok")


def _in_hub_cache(name: str) -> bool:
    if name.count("/") != 1:
        return False
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}"
    return folder.is_dir()


# ------------------------------------------------------------------------------------------ output

def _m(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n:,}"


def print_report(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    styles = {"ok": "green", "note": "yellow", "problem": "bold red"}
    for section, rows in report.sections.items():
        table = Table(title=section, title_justify="left", show_header=False)
        table.add_column("item", no_wrap=True)
        table.add_column("value", overflow="fold")
        table.add_column("status", no_wrap=True)
        for item, value, status in rows:
            table.add_row(item, value, f"[{styles[status]}]{status}[/]")
        console.print(table)
    if report.problems:
        console.print(f"[bold red]{len(report.problems)} problem(s):[/]")
        for p in report.problems:
            console.print(f"  - {p}")
    else:
        console.print("[green]Nothing blocks this run.[/]")
