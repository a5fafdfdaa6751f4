"""A summarization-like pair set from real text this project did not write: Python docstrings.

    python bench/build_real_corpus.py --out cache/real/docstrings      # train/validation/test .jsonl + README.md

Source: the docstrings of the packages that requirements.txt installs (torch, transformers, numpy, datasets,
accelerate, rich, and typer, which transformers requires), read with `ast` from their installed source files (nothing is imported or
executed), so the same versions give the same pairs on any machine that installs requirements.txt.
Man pages were the other candidate (NAME line -> DESCRIPTION), but they come from a system package that a
CI image may lack, and their versions are not pinned by this project.

One pair per documented function, class or module, with the natural column names:

    {"qualname": "torch.nn.modules.activation.ReLU", "summary_line": "Applies the rectified linear unit ...",
     "body": "the description paragraphs that follow the summary line"}

The task: `body` (optionally with `qualname`, through `--dataset-input-template`) -> `summary_line`.
`summary_line` is the docstring's first paragraph on one line; `body` is the description that follows it,
cut before the first parameter/returns/example section (parameter lists and doctests are not prose).

Quality rules, each counted in the folder's README.md:
- a summary of 4-40 words that reads as prose; a body of 12-160 words;
- exact duplicates of a summary are dropped (overloads and subclasses repeat them), and so are bodies that
  are near-identical to a kept one (same first or last 12 normalised words: copied docstrings);
- splits are by module group (`transformers.models.bert`, `torch.nn.modules`, `numpy.linalg`, ...), chosen
  by a hash of the group's name, so the test split never shares a module with the training split.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import json
import re
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

PINNED = ("torch", "transformers", "numpy", "datasets", "accelerate", "rich", "typer")
DEPENDENCIES = ("sympy", "networkx", "pandas", "huggingface_hub", "jinja2", "click")  # installed with them
PACKAGES = PINNED + DEPENDENCIES
SPLIT_SHARES = (("test", 8), ("validation", 8), ("train", 84))  # percent of module groups, by hash
SPLIT_SIZES = {"train": 4000, "validation": 300, "test": 300}
SUMMARY_WORDS = (4, 40)
BODY_WORDS = (12, 160)
NEAR_DUP_WORDS = 12
PROSE_START = re.compile(r"^[A-Za-z`\"']")
PARAMETER = re.compile(r"^\*{0,2}\w+ ?(\([^)]*\))? ?:")  # "x (int): ...", "name: ..." (a parameter, not a summary)
MARKUP = re.compile(r"(::\s*$|^\s*[-=~^]{3,}\s*$|^\s*[|+]-|\{\{|\}\}|>>>)", re.MULTILINE)


def package_root(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0])


def docstrings(name: str) -> Iterator[tuple[str, str, str]]:
    """(module, qualname, docstring) of every documented module, class and function of a package, in file order."""
    root = package_root(name)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        if {"test", "tests", "testing"} & set(rel.parts):
            continue  # test suites: internal notes
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        yield from _walk(tree, module, module)


def _walk(node: ast.AST, module: str, qualname: str) -> Iterator[tuple[str, str, str]]:
    doc = ast.get_docstring(node, clean=True) if isinstance(
        node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if doc:
        yield module, qualname, doc
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and \
                not (child.name.startswith("_") and child.name != "__init__"):
            name = qualname if child.name == "__init__" else f"{qualname}.{child.name}"
            yield from _walk(child, module, name)


def one_line(text: str) -> str:
    return " ".join(text.split())


ROLE = re.compile(r":[a-z:]+:`~?([^`]*?)`")  # :class:`~torch.nn.ReLU` -> torch.nn.ReLU
# "Args:", "Returns:", numpy-style "Parameters" over "----------"
HEADER = re.compile(r"^\s*([A-Z][A-Za-z ]{2,30}:|[-=~^]{3,}|(Parameters|Returns|Yields|Raises|Attributes|Methods|Notes|"
                    r"Warns|Warnings|Other Parameters|Keyword Arguments))\s*$")
STOP = re.compile(r"^\s*(Examples?|Example usage|Usage|References|See Also)\s*:*\s*$|^\s*(>>>|\.\.\. )",
                  re.IGNORECASE)


def plain(text: str) -> str:
    """reStructuredText inline markup to plain words: roles, ``literals``, `refs`, *emphasis*."""
    text = ROLE.sub(lambda m: m.group(1).split(".")[-1] if m.group(0).find("~") >= 0 else m.group(1), text)
    return re.sub(r"[`*]+", "", text)


def body_lines(rest: str) -> Iterator[str]:
    """The prose lines of a docstring after its summary: stops at the examples, skips literal blocks
    (after a `::`), directive and section-header lines; keeps parameter descriptions as text."""
    block_indent: Optional[int] = None
    for line in rest.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if line.strip() and indent <= block_indent:
                block_indent = None
            else:
                continue
        if STOP.match(line):
            return
        if line.rstrip().endswith("::"):
            block_indent = indent
            line = line.rstrip()[:-2]
        if line.lstrip().startswith(".. ") or HEADER.match(line):
            continue
        yield line.strip()


def split_docstring(doc: str) -> Optional[tuple[str, str]]:
    """(summary line, body) of a docstring, or None when nothing but its summary is prose."""
    parts = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)
    if len(parts) < 2:
        return None
    summary = one_line(plain(parts[0]))
    paragraphs = re.split(r"\n(?:\s*\n)+", "\n".join(body_lines(parts[1])))
    body = [one_line(plain(p)) for p in paragraphs if p.strip()]
    words = " ".join(body).split()
    if len(words) > BODY_WORDS[1]:  # long docstrings: their beginning, cut at a sentence end when there is one
        cut = " ".join(words[:BODY_WORDS[1]])
        end = max(cut.rfind(". "), cut.rfind(".\n"))
        return summary, cut[:end + 1] if end > len(cut) // 2 else cut
    return (summary, "\n".join(body)) if body else None


def acceptable(summary: str, body: str) -> Optional[str]:
    """None when the pair is kept, else the reason it is dropped."""
    s_words, b_words = len(summary.split()), len(body.split())
    if not SUMMARY_WORDS[0] <= s_words <= SUMMARY_WORDS[1]:
        return "summary_length"
    if b_words < BODY_WORDS[0]:
        return "body_length"
    if not PROSE_START.match(summary) or MARKUP.search(summary) or summary.rstrip().endswith(":") or \
            PARAMETER.match(summary):
        return "summary_not_prose"
    if sum(c.isalpha() or c.isspace() for c in body) < 0.8 * len(body):
        return "body_not_prose"
    return None


def normalised_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def group_of(module: str) -> str:
    """The module group a pair's split is drawn by: transformers.models.<model> (its files copy each other's
    docstrings), else the module itself."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["transformers", "models"] else module


def split_of(group: str, shares: tuple[tuple[str, int], ...] = SPLIT_SHARES) -> str:
    bucket = int(hashlib.sha256(group.encode()).hexdigest(), 16) % 100
    for split, share in shares:
        if bucket < share:
            return split
        bucket -= share
    return "train"


class Deduplicator:
    """Drops repeats of a kept summary, and texts near-identical to a kept one (the same first or last
    NEAR_DUP_WORDS normalised words); `text_name` names the second reason (near_duplicate_<text_name>)."""

    def __init__(self, text_name: str) -> None:
        self.text_name = text_name
        self.summaries: set[str] = set()
        self.ends: set[tuple[str, ...]] = set()

    def reason(self, summary: str, text_words: list[str]) -> Optional[str]:
        """None (and the pair is remembered) when it is kept, else why it is dropped."""
        key = " ".join(normalised_words(summary))
        ends = {("head",) + tuple(text_words[:NEAR_DUP_WORDS]), ("tail",) + tuple(text_words[-NEAR_DUP_WORDS:])}
        if key in self.summaries:
            return "duplicate_summary"
        if ends & self.ends:
            return f"near_duplicate_{self.text_name}"
        self.summaries.add(key)
        self.ends |= ends
        return None


def collect(packages: tuple[str, ...]) -> tuple[dict[str, list[dict]], dict[str, int]]:
    stats: dict[str, int] = {"docstrings": 0}
    duplicates = Deduplicator("body")
    rows: dict[str, list[dict]] = {s: [] for s, _ in SPLIT_SHARES}
    for package in packages:
        for module, qualname, doc in docstrings(package):
            stats["docstrings"] += 1
            pair = split_docstring(doc)
            if pair is None:
                stats["dropped_no_body"] = stats.get("dropped_no_body", 0) + 1
                continue
            summary, body = pair
            reason = acceptable(summary, body)
            reason = reason or duplicates.reason(summary, normalised_words(body))
            if reason is not None:
                stats[f"dropped_{reason}"] = stats.get(f"dropped_{reason}", 0) + 1
                continue
            rows[split_of(group_of(module))].append({"qualname": qualname, "summary_line": summary, "body": body})
    return rows, stats


def sample(rows: list[dict], size: int) -> list[dict]:
    """At most `size` rows, a deterministic pseudo-random choice (by hash of the qualname), in that order."""
    return sorted(rows, key=lambda r: hashlib.sha256(r["qualname"].encode()).hexdigest())[:size]


def size_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(out))
    for split, size in SPLIT_SIZES.items():
        parser.add_argument(f"--{split}", type=int, default=size, help=f"rows of {split}.jsonl (default {size})")


def write_corpus(out: Path, chosen: dict[str, list[dict]], manifest: dict, title: str,
                 facts: Callable[[list[dict]], dict] = lambda rows: {}) -> None:
    """Each split's rows to SPLIT.jsonl, and README.md with `manifest` plus each file's rows, sha256 and `facts`."""
    out.mkdir(parents=True, exist_ok=True)
    manifest["files"] = {}
    for split, split_rows in chosen.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in split_rows)
        (out / f"{split}.jsonl").write_text(text, encoding="utf-8")
        manifest["files"][f"{split}.jsonl"] = {"rows": len(split_rows), **facts(split_rows),
                                               "sha256": hashlib.sha256(text.encode()).hexdigest()}
    # README.md, not a .json: every .json/.jsonl file in a data folder is read as data
    (out / "README.md").write_text(f"{title}\n\n```json\n" + json.dumps(manifest, indent=2) + "\n```\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size_arguments(parser, "cache/real/docstrings")
    a = parser.parse_args()
    rows, stats = collect(PACKAGES)
    manifest = {"packages": {p: importlib.metadata.version(p) for p in PACKAGES}, "python": sys.version.split()[0],
                "candidates": {s: len(r) for s, r in rows.items()}, "filter": stats}
    chosen = {split: sample(rows[split], getattr(a, split)) for split in SPLIT_SIZES}
    write_corpus(a.out, chosen, manifest, "Built by bench/build_real_corpus.py (docstring summary lines).")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
