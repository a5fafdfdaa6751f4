"""The eval report: one JSON document and its Rich rendering.

    {
      "report": "latentbridge-eval", "version": 1, "created": ISO time,
      "dataset": ..., "split": ..., "n_examples": ...,
      "checkpoint": {"path", "step", "stage", "fingerprint"},
      "scorer": "rouge-score ... use_stemmer=True ...",
      "sampling": {temperature, top_p, top_k, do_sample, max_generation_length, seed},
      "systems": {"latent": {rouge1, rouge2, rougeL, rougeLsum},
                  "reconstruction": {...}, "constant": {..., "summary", "pool_size"},
                  "direct": {..., "steps", "lr", ...}},
      "latent_metrics": {mse, cosine, retrieval_top1, retrieval_chance, length_accuracy, n_examples, n_slots},
      "prefix_use": {"pipeline": {loss_true_prefix, loss_shuffled_prefix, gap, n_examples}, "gold": {...}},
      "columns": {"input": the trained input column (or "template ..."), "target": the target column},
      "samples": [{"id", "input", "reference", "latent", ...}],
      "verdict": one line: does the latent pipeline beat the constant and direct baselines, by how much,
      "notes": [...], "seconds": {...}
    }
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping, Optional

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from latentbridge.evaluation.rouge import ROUGE_TYPES

REPORT_KIND = "latentbridge-eval"
REPORT_VERSION = 1
SYSTEM_LABELS = {
    "latent": "latent pipeline",
    "reconstruction": "gold latents (reference's own) -> adapter",
    "constant": "constant baseline",
    "direct": "direct baseline (no bottleneck)",
}
ROUGE_LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}


def build_report(*, dataset: str, split: str, n_examples: int, checkpoint: Mapping[str, Any], scorer: str,
                 sampling: Mapping[str, Any], systems: Mapping[str, Mapping[str, Any]],
                 latent_metrics: Mapping[str, Any], prefix_use: Mapping[str, Any], samples: list[dict],
                 columns: Optional[Mapping[str, str]] = None, notes: Optional[list[str]] = None,
                 seconds: Optional[Mapping[str, float]] = None) -> dict[str, Any]:
    notes = list(notes or [])
    gold = gold_latents_note(systems, prefix_use)
    if gold:
        notes.append(gold)
    return {
        "report": REPORT_KIND, "version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset, "split": split, "n_examples": n_examples, "checkpoint": dict(checkpoint),
        "scorer": scorer, "sampling": dict(sampling), "systems": {k: dict(v) for k, v in systems.items()},
        "latent_metrics": dict(latent_metrics), "prefix_use": {k: dict(v) for k, v in prefix_use.items()},
        "columns": dict(columns or {"input": "input", "target": "target"}), "samples": samples,
        "verdict": verdict(systems), "notes": notes, "seconds": dict(seconds or {}),
    }


VERDICT_METRIC = "rougeL"  # the constant baseline is chosen by ROUGE-L, so the comparison uses it too


def _points(system: Mapping[str, Any]) -> float:
    return 100 * system[VERDICT_METRIC]


def _against(latent: float, name: str, other: Mapping[str, Any]) -> str:
    theirs = _points(other)
    diff = latent - theirs
    relative = f" ({100 * diff / theirs:+.0f}%)" if theirs > 0 else ""
    if abs(diff) < 0.005:
        return f"ties the {name} baseline ({theirs:.2f})"
    word = "beats" if diff > 0 else "loses to"
    return f"{word} the {name} baseline ({theirs:.2f}) by {abs(diff):.2f} points{relative}"


def verdict(systems: Mapping[str, Mapping[str, Any]]) -> str:
    """One line: whether the latent pipeline beats the constant and direct baselines on ROUGE-L, by how much."""
    latent = systems.get("latent")
    if latent is None:
        return "Verdict: no latent pipeline scores in this report."
    mine = _points(latent)
    head = f"Verdict (ROUGE-L F1 x 100): the latent pipeline ({mine:.2f})"
    compared = [_against(mine, name, systems[name]) for name in ("constant", "direct") if name in systems]
    if not compared:
        return f"{head} was not compared with any baseline; run eval with --baselines."
    worth = ""
    if "constant" in systems and mine <= _points(systems["constant"]):
        worth = "; it does no better than one fixed sentence for every input"
    return f"{head} " + " and ".join(compared) + worth + "."


def gold_latents_note(systems: Mapping[str, Mapping[str, Any]], prefix_use: Mapping[str, Any]) -> Optional[str]:
    """What the gold-latents row measures, and why it can score below the pipeline (when it does)."""
    if "reconstruction" not in systems or "latent" not in systems:
        return None
    text = ("gold latents: the reference's own encoder latents, fed to the adapter and decoder in place of the "
            "middle's prediction; it measures what the adapter and decoder make of the exact target latents. It is "
            "the ceiling of the latent path only when the adapter trained on gold latents (--training-phase "
            "phase1). The default plan's stage 4 fine-tunes the adapter on the middle's outputs instead, so gold "
            "latents are inputs it was not tuned to and can score below the pipeline")
    gold, latent = _points(systems["reconstruction"]), _points(systems["latent"])
    if gold < latent:
        text += f": here {gold:.2f} vs {latent:.2f} ROUGE-L"
        pipeline, reference = prefix_use.get("pipeline"), prefix_use.get("gold")
        if pipeline and reference:
            text += (f", and the decoder's loss of the reference is higher from the gold prefix "
                     f"({reference['loss_true_prefix']:.3f}) than from the middle's ({pipeline['loss_true_prefix']:.3f})")
    return text + "."


def _f(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def rouge_table(report: Mapping[str, Any]) -> Table:
    table = Table(title=f"ROUGE F1 x 100 on {report['dataset']} / {report['split']} (n = {report['n_examples']})",
                  caption=report["scorer"])
    table.add_column("system")
    for t in ROUGE_TYPES:
        table.add_column(ROUGE_LABELS[t], justify="right")
    for name, scores in report["systems"].items():
        table.add_row(SYSTEM_LABELS.get(name, name), *[_f(100 * scores[t], 2) if t in scores else "-"
                                                       for t in ROUGE_TYPES])
    return table


def diagnostics_table(report: Mapping[str, Any]) -> Table:
    lm, pu = report["latent_metrics"], report["prefix_use"]
    table = Table(title="Latent path, stage by stage")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("middle: latent MSE (pred vs summary latents)", _f(lm["mse"]))
    table.add_row("middle: latent cosine", _f(lm["cosine"]))
    table.add_row("middle: in-batch retrieval top-1 (chance)",
                  f"{_f(lm['retrieval_top1'], 3)} ({_f(lm['retrieval_chance'], 3)})")
    if lm.get("length_accuracy") is not None:
        table.add_row("middle: stop at the right length", _f(lm["length_accuracy"], 3))
    for key, label in (("pipeline", "predicted"), ("gold", "gold")):
        if key in pu:
            u = pu[key]
            table.add_row(f"decoder loss, {label} prefix: true / shuffled (gap)",
                          f"{_f(u['loss_true_prefix'], 3)} / {_f(u['loss_shuffled_prefix'], 3)} ({_f(u['gap'], 3)})")
    return table


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_report(report: Mapping[str, Any]) -> str:
    """The report as Markdown (written beside its JSON): the ROUGE table of every system, the latent metrics,
    the prefix-use gap, and the samples side by side."""
    lm, pu = report["latent_metrics"], report["prefix_use"]
    ckpt = report["checkpoint"]
    lines = [f"# Evaluation: {report['dataset']} / {report['split']} (n = {report['n_examples']})", "",
             f"Model `{ckpt.get('path')}` (stage {ckpt.get('stage')}, step {ckpt.get('step')}), {report['created']}.",
             f"Sampling: {', '.join(f'{k} {v}' for k, v in report['sampling'].items())}.", "",
             f"**{report['verdict']}**", "",
             "## ROUGE (F1 x 100)", "", f"Scorer: {report['scorer']}.", "",
             "| system | " + " | ".join(ROUGE_LABELS[t] for t in ROUGE_TYPES) + " |",
             "|---|" + "---:|" * len(ROUGE_TYPES)]
    for name, scores in report["systems"].items():
        cells = [_f(100 * scores[t], 2) if t in scores else "-" for t in ROUGE_TYPES]
        lines.append(f"| {SYSTEM_LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    lines += ["", "## Latent metrics (middle: predicted vs summary latents)", "", "| measure | value |", "|---|---:|",
              f"| MSE | {_f(lm['mse'])} |", f"| cosine | {_f(lm['cosine'])} |",
              f"| in-batch retrieval top-1 (chance) | {_f(lm['retrieval_top1'], 3)} ({_f(lm['retrieval_chance'], 3)}) |"]
    if lm.get("length_accuracy") is not None:
        lines.append(f"| stop at the right length | {_f(lm['length_accuracy'], 3)} |")
    lines += ["", "## Prefix use (decoder loss of the reference)", "",
              "| prefix | true | shuffled in batch | gap |", "|---|---:|---:|---:|"]
    for key, label in (("pipeline", "predicted (middle)"), ("gold", "gold summary latents")):
        if key in pu:
            u = pu[key]
            lines.append(f"| {label} | {_f(u['loss_true_prefix'], 3)} | {_f(u['loss_shuffled_prefix'], 3)} | "
                         f"{_f(u['gap'], 3)} |")
    if report["samples"]:
        columns = [k for k in report["samples"][0] if k != "id"]
        headings = [sample_heading(report, c) for c in columns]
        lines += ["", "## Samples", "", "| id | " + " | ".join(headings) + " |", "|---|" + "---|" * len(columns)]
        for row in report["samples"]:
            lines.append(f"| {_md_cell(row.get('id'))} | " + " | ".join(_md_cell(row.get(c, "")) for c in columns) + " |")
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def sample_heading(report: Mapping[str, Any], key: str) -> str:
    """A sample column's heading: the input and reference columns are named after the trained columns."""
    names = report.get("columns", {})
    if key == "input":
        return f"input ({names['input']})" if "input" in names else "input"
    if key == "reference":
        return f"reference ({names['target']})" if "target" in names else "reference"
    return key


def render_report(report: Mapping[str, Any], console: Optional[Console] = None) -> None:
    """Both tables, the baselines' details and any notes, on the terminal (stderr-safe Console)."""
    console = console or Console()
    parts: list[Any] = [rouge_table(report), diagnostics_table(report)]
    constant = report["systems"].get("constant")
    if constant and "summary" in constant:
        parts.append(f"constant baseline: {constant['summary']!r} (best mean ROUGE-L of {constant['pool_size']} "
                     "training summaries)")
    direct = report["systems"].get("direct")
    if direct and "steps" in direct:
        parts.append(f"direct baseline: {direct['steps']} optimizer steps, lr {direct['lr']}, final train loss "
                     f"{_f(direct.get('final_train_loss'), 3)}")
    parts += [f"note: {n}" for n in report.get("notes", [])]
    parts.append(Text(report["verdict"], style="bold"))
    console.print(Group(*parts))
