"""A summarization-like pair set from real text this project did not write: Debian package descriptions.

    python bench/build_deb_corpus.py --out cache/real/debian      # train/validation/test .jsonl + README.md

Source: dpkg's database of the installed packages (/var/lib/dpkg/status), written by each package's
maintainers. Every control paragraph's `Description` is a synopsis line followed by the long description;
the folder's README.md records each package's version, so the same installed packages give byte-identical
files.

One pair per installed package, with the natural column names:

    {"package": "grep", "source": "grep", "synopsis": "GNU grep, egrep and fgrep",
     "description": "'GNU grep' is a tool for searching ..."}

The task: `description` -> `synopsis` (`--dataset-input-field description --dataset-target-field synopsis`).
`description` is the long description as plain text ("." lines are paragraph breaks; the leading space of
each line is dropped), its first 160 words, cut at a sentence end when there is one.

Quality rules, each counted in the folder's README.md:
- a synopsis of 2-30 words; a description of 12-160 words;
- exact duplicates of a synopsis are dropped, and so are descriptions near-identical to a kept one (same
  first or last 12 normalised words: a library's -dev, -doc and runtime packages share one description);
- splits are by source package, chosen by a hash of its name, so binaries built from one source (which
  share their wording) are never in two splits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Iterator, Optional

from build_man_corpus import cut
from build_real_corpus import Deduplicator, normalised_words, size_arguments, split_of, write_corpus

STATUS = Path("/var/lib/dpkg/status")
SPLIT_SHARES = (("test", 10), ("validation", 10), ("train", 80))  # percent of source packages, by hash
SYNOPSIS_WORDS = (2, 30)
DESCRIPTION_WORDS = (12, 160)


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The control paragraphs of a dpkg status file, each field's continuation lines kept (with their leading
    space) after a newline. Parsed by hand: the format is a few lines of Debian policy 5.1, and python-debian
    is not one of this project's dependencies."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        name = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and name is not None:
                fields[name] += "\n" + line
            elif ":" in line:
                name, value = line.split(":", 1)
                fields[name] = value.strip()
        if fields:
            yield fields


def long_description(lines: list[str]) -> str:
    """The long description as plain text: each line's leading space dropped, " ." lines as paragraph
    breaks (Debian policy 5.6.13), whitespace folded."""
    paragraphs_ = [[]]
    for line in lines:
        if line.strip() == ".":
            paragraphs_.append([])
        else:
            paragraphs_[-1].append(line.strip())
    return "\n".join(" ".join(p) for p in paragraphs_ if p)


def package_pair(fields: dict[str, str]) -> Optional[dict]:
    """The pair of one installed package, or None when it is not installed or has no long description."""
    if not fields.get("Status", "").endswith(" installed") or "Description" not in fields:
        return None
    synopsis, *rest = fields["Description"].split("\n")
    description = long_description(rest)
    if not description:
        return None
    source = fields.get("Source", fields["Package"]).split(" ")[0]  # "Source: glibc (2.36-9)"
    return {"package": fields["Package"], "source": source, "version": fields.get("Version", ""),
            "synopsis": " ".join(synopsis.split()), "description": cut(description, DESCRIPTION_WORDS[1])}


def acceptable(pair: dict) -> Optional[str]:
    """None when the pair is kept, else the reason it is dropped."""
    if not SYNOPSIS_WORDS[0] <= len(pair["synopsis"].split()) <= SYNOPSIS_WORDS[1]:
        return "synopsis_length"
    if len(pair["description"].split()) < DESCRIPTION_WORDS[0]:
        return "description_length"
    return None


def collect(status: Path) -> tuple[dict[str, list[dict]], dict[str, int], dict[str, str]]:
    """The kept pairs by split, the filter's counts, and each used package's version."""
    stats: dict[str, int] = {"packages": 0}
    duplicates = Deduplicator("description")
    rows: dict[str, list[dict]] = {s: [] for s, _ in SPLIT_SHARES}
    versions: dict[str, str] = {}
    for fields in paragraphs(status.read_text(encoding="utf-8", errors="replace")):
        pair = package_pair(fields)
        if pair is None:
            continue
        stats["packages"] += 1
        reason = acceptable(pair) or duplicates.reason(pair["synopsis"], normalised_words(pair["description"]))
        if reason is not None:
            stats[f"dropped_{reason}"] = stats.get(f"dropped_{reason}", 0) + 1
            continue
        versions[pair["package"]] = pair.pop("version")
        rows[split_of(pair["source"], SPLIT_SHARES)].append(pair)
    return rows, stats, versions


def sample(rows: list[dict], size: int) -> list[dict]:
    """At most `size` rows, a deterministic pseudo-random choice (by hash of the package name), in that order."""
    return sorted(rows, key=lambda r: hashlib.sha256(r["package"].encode()).hexdigest())[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size_arguments(parser, "cache/real/debian")
    parser.add_argument("--status", type=Path, default=STATUS, help="a dpkg status file (default %(default)s)")
    a = parser.parse_args()
    rows, stats, versions = collect(a.status)
    # "columns": the Config fields bench_quality.py --real passes for this corpus
    manifest = {"columns": {"dataset_input_field": "description", "dataset_target_field": "synopsis"},
                "python": sys.version.split()[0], "candidates": {s: len(r) for s, r in rows.items()},
                "filter": stats, "package_versions": dict(sorted(versions.items()))}
    chosen = {split: sample(rows[split], getattr(a, split)) for split in ("train", "validation", "test")}
    write_corpus(a.out, chosen, manifest, "Built by bench/build_deb_corpus.py (Debian package synopses from their "
                 "long descriptions).")
    print(json.dumps({k: v for k, v in manifest.items() if k != "package_versions"}, indent=2))


if __name__ == "__main__":
    main()
