"""A summarization-like pair set from real text this project did not write: the system's man pages.

    python bench/build_man_corpus.py --out cache/real/manpages      # train/validation/test .jsonl + README.md

Source: the English man pages installed under /usr/share/man/man1 ... man8 by Debian packages (the owner
of each file from dpkg's file lists, its source package and version from dpkg-query), read as roff source.
The folder's README.md records every package version and the sha256 of each file, so the same installed
packages give byte-identical files.

One pair per page, with the natural column names:

    {"name": "grep, egrep, fgrep, rgrep", "summary": "print lines that match patterns",
     "description": "grep searches for PATTERNS in each FILE. ...", "section": "1", "package": "grep"}

The task: `description` -> `summary` (`--dataset-input-field description --dataset-target-field summary`).
`summary` is the NAME line after its dash: the one-line prose summary. The names before the dash are left
out of the target because they are identifiers to copy, not a summary of the text (and the docstring corpus
measured that latents copy identifiers poorly); they stay in the `name` column. `description` is the
DESCRIPTION section as plain text, its first 160 words, cut at a sentence end when there is one; literal
blocks (.nf/.fi, .EX/.EE) and tables are left out.

Quality rules, each counted in the folder's README.md:
- a summary of 2-30 words that is prose (not "manual page for ...", help2man's placeholder); a description
  of 12-160 words;
- exact duplicates of a summary are dropped, and so are descriptions near-identical to a kept one (same
  first or last 12 normalised words once the page's own name words are removed: this folds gcloud's alpha
  and beta pages onto their GA page, and copies of one page under several names);
- splits are by group, chosen by a hash of the group's name: the source package, or for google-cloud-cli
  (16,000 of the pages) its command group (`gcloud compute instances`, alpha/beta folded in), so no
  package or command group is in two splits.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

from build_real_corpus import Deduplicator, normalised_words, size_arguments, split_of, write_corpus

MAN_ROOT = Path("/usr/share/man")
SECTIONS = ("man1", "man2", "man3", "man4", "man5", "man6", "man7", "man8")
SPLIT_SHARES = (("test", 10), ("validation", 10), ("train", 80))  # percent of groups, by hash (8% gave < 300 tests)
SUMMARY_WORDS = (2, 30)
DESCRIPTION_WORDS = (12, 160)
GCLOUD_TRACKS = ("alpha", "beta", "preview")

# Roff to plain text by hand: groff costs ~17 ms a page (a process each), over five minutes for the ~20,000
# pages here, and its output changes with the groff version; the two sections read here use few requests.
FONT_MACROS = {".B", ".I", ".SM", ".SB"}  # arguments joined by spaces
ALTERNATING_MACROS = {".BR", ".RB", ".IR", ".RI", ".BI", ".IB"}  # arguments joined without spaces
TAG_MACROS = {".IP", ".TP"}  # .IP's argument is a bullet or tag; .TP's tag is the next line (kept)
LITERAL = {".nf": ".fi", ".EX": ".EE", ".TS": ".TE", ".de": "..", ".ig": ".."}
NAMED_CHARS = {"em": " - ", "en": "-", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'",
               "bu": "", "co": "(c)", "rg": "(R)", "tm": "(TM)", "hy": "-", "mi": "-", "ga": "`", "ti": "~",
               "ha": "^", "bv": "|", "ba": "|", "pl": "+", "eq": "=", "<=": "<=", ">=": ">=", "->": "->",
               "R": "(R)", "Tm": "(TM)", "Aq": "'", "L\"": '"', "R\"": '"', "C`": '"', "C'": '"'}
ESCAPES = re.compile(r"""\\(?:
    f(?:\[[^\]]*\]|\(..|.)            # font change
  | s[-+]?(?:\d|\(\d\d|\[\d+\])       # size change
  | [(](?P<paren>..)                  # \(xx named character
  | \[(?P<bracket>[^\]]*)\]           # \[xxx] named character
  | \*(?:\[(?P<sbracket>[^\]]*)\]|\((?P<sparen>..)|(?P<sone>.))   # string interpolation
  | [NhvwHSxXoDbVYZlLk]'[^']*'       # drawing, motions, widths: no text
  | [kmnM](?:\[[^\]]*\]|\(..|.)      # marks, colours, registers
  | "(?P<comment>.*)$                 # comment to the end of the line
  | (?P<char>.)                       # one-character escapes
)""", re.VERBOSE)
ONE_CHAR = {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "&": "", "|": "", "^": "", "%": "",
            "c": "", ":": "", "/": "", ",": "", ")": "", "'": "'", "`": "`", ".": ".", "t": " ", "p": ""}


def unescape(text: str) -> str:
    def one(m: re.Match) -> str:
        name = m.group("paren") or m.group("bracket") or m.group("sbracket") or m.group("sparen") or m.group("sone")
        if name is not None:
            return NAMED_CHARS.get(name, "")
        if m.group("char") is not None:
            return ONE_CHAR.get(m.group("char"), "")
        return ""
    return ESCAPES.sub(one, text)


def macro_arguments(line: str) -> list[str]:
    """The arguments of a request line, with roff's double quotes."""
    return [a[1:-1] if a.startswith('"') and a.endswith('"') else a
            for a in re.findall(r'"(?:[^"]|"")*"|\S+', line)[1:]]


def sections(source: str) -> dict[str, list[str]]:
    """The text lines of each .SH section (header upper-cased), requests turned into their text or dropped."""
    out: dict[str, list[str]] = {}
    current: Optional[list[str]] = None
    literal_end: Optional[str] = None
    for line in source.splitlines():
        if literal_end is not None:
            if line.split()[:1] == [literal_end]:
                literal_end = None
            continue
        if line.startswith((".", "'")):
            request = line.split()[0] if line.split() else "."
            if request == ".SH":
                header = unescape(" ".join(macro_arguments(line))).strip().upper()
                current = out.setdefault(header, [])
            elif request in LITERAL:
                literal_end = LITERAL[request]
            elif current is not None and request in FONT_MACROS:
                current.append(" ".join(macro_arguments(line)))
            elif current is not None and request in ALTERNATING_MACROS:
                current.append("".join(macro_arguments(line)))
            elif current is not None and request in TAG_MACROS | {".PP", ".LP", ".P", ".HP", ".sp"}:
                current.append("")  # a paragraph break keeps sentences apart
            continue
        if current is not None:
            current.append(line)
    return out


def plain(lines: list[str]) -> str:
    return " ".join(unescape(" ".join(lines)).split())


def name_line(text: str) -> Optional[tuple[str, str]]:
    """(names, summary) of a NAME section: "grep, egrep - print lines ..." -> ("grep, egrep", "print lines ...")."""
    m = re.match(r"(.+?)\s+-+\s+(.+)$", text) or re.match(r"(\S+)\s*-+\s+(.+)$", text)
    return (m.group(1).strip(), m.group(2).strip()) if m else None


def cut(text: str, limit: int) -> str:
    words = text.split()
    if len(words) <= limit:
        return text
    head = " ".join(words[:limit])
    end = head.rfind(". ")
    return head[:end + 1] if end > len(head) // 2 else head


def read_page(path: Path) -> Optional[str]:
    try:
        with gzip.open(path) if path.suffix == ".gz" else open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return None


def page_pair(source: str) -> tuple[Optional[dict], str]:
    """({name, summary, description} or None, the reason when None)."""
    if source.lstrip().startswith(".so "):
        return None, "redirect"
    if re.search(r"^\.Sh\s", source, re.MULTILINE):
        return None, "mdoc_page"  # BSD mdoc (ssh, file, dash): its text is in macros (.Nm, .Nd) not read here
    parts = sections(source)
    if "NAME" not in parts:
        return None, "no_name_section"
    parsed = name_line(plain(parts["NAME"]))
    if parsed is None:
        return None, "name_without_dash"
    description = plain(parts.get("DESCRIPTION", []))
    if not description:
        return None, "no_description"
    return {"name": parsed[0], "summary": parsed[1], "description": cut(description, DESCRIPTION_WORDS[1])}, ""


def acceptable(pair: dict) -> Optional[str]:
    s_words, d_words = len(pair["summary"].split()), len(pair["description"].split())
    if not SUMMARY_WORDS[0] <= s_words <= SUMMARY_WORDS[1]:
        return "summary_length"
    if d_words < DESCRIPTION_WORDS[0]:
        return "description_length"
    if re.match(r"(manual page for|the .* manual page$)", pair["summary"], re.IGNORECASE) or \
            not re.match(r"[A-Za-z0-9\"'(]", pair["summary"]):
        return "summary_not_prose"
    if sum(c.isalpha() or c.isspace() for c in pair["description"]) < 0.75 * len(pair["description"]):
        return "description_not_prose"
    return None


def installed_packages() -> dict[str, tuple[str, str]]:
    """package (with any :arch) -> (source package, version), from dpkg-query."""
    out = subprocess.run(["dpkg-query", "-W", "-f", "${binary:Package}\t${source:Package}\t${Version}\n"],
                         capture_output=True, text=True, check=True).stdout
    packages = {}
    for line in out.splitlines():
        binary, source, version = line.split("\t")
        packages[binary] = packages[binary.split(":")[0]] = (source or binary.split(":")[0], version)
    return packages


def page_owners() -> dict[str, str]:
    """man page path -> the package that installs it, from dpkg's file lists (dpkg -S per file is slow)."""
    owners = {}
    for listing in sorted(Path("/var/lib/dpkg/info").glob("*.list")):
        package = listing.name[:-len(".list")]
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(str(MAN_ROOT) + "/man") and line.split("/")[4] in SECTIONS:
                owners[line] = package
    return owners


def gcloud_track_and_words(path: Path) -> tuple[int, list[str]]:
    """(0 for GA else 1, the command words without the alpha/beta track) of a gcloud page's file name."""
    words = path.name.split(".")[0].split("_")[1:]
    if words and words[0] in GCLOUD_TRACKS:
        return 1, words[1:]
    return 0, words


def group_of(path: Path, source_package: str) -> str:
    """What a page's split is drawn by: its source package, or for gcloud its first two command words."""
    if source_package != "google-cloud-cli":
        return source_package
    return "gcloud " + " ".join(gcloud_track_and_words(path)[1][:2])


def pages() -> Iterator[tuple[Path, str]]:
    """(path, owning package) of every installed English man page file (links and unowned files skipped),
    gcloud's alpha/beta pages after every GA page so that deduplication keeps the GA text."""
    owners = page_owners()
    found = []
    for section in SECTIONS:
        for path in sorted((MAN_ROOT / section).iterdir()):
            if path.is_symlink() or not path.is_file():
                continue
            package = owners.get(str(path), "")
            track = gcloud_track_and_words(path)[0] if path.name.startswith("gcloud") else 0
            found.append((track, section, path.name, path, package))
    for _, _, _, path, package in sorted(found):
        yield path, package


def count(stats: dict[str, int], key: str) -> None:
    stats[key] = stats.get(key, 0) + 1


def collect() -> tuple[dict[str, list[dict]], dict[str, int], dict[str, str]]:
    packages = installed_packages()
    stats: dict[str, int] = {"pages": 0}
    used: dict[str, str] = {}
    duplicates = Deduplicator("description")
    rows: dict[str, list[dict]] = {s: [] for s, _ in SPLIT_SHARES}
    for path, owner in pages():
        stats["pages"] += 1
        if not owner:
            count(stats, "dropped_unowned")  # installed outside dpkg (alternatives' targets are links)
            continue
        source = read_page(path)
        pair, reason = page_pair(source) if source is not None else (None, "unreadable")
        reason = reason if pair is None else acceptable(pair)
        if reason is None:  # without the page's own name words, gcloud's alpha/beta pages match their GA page
            own = set(normalised_words(pair["name"])) | set(GCLOUD_TRACKS)
            reason = duplicates.reason(pair["summary"], [w for w in normalised_words(pair["description"])
                                                          if w not in own])
        if reason is not None:
            count(stats, f"dropped_{reason}")
            continue
        source_package, version = packages.get(owner, (owner.split(":")[0], "?"))
        used[source_package] = version
        row = {**pair, "section": path.parent.name[len("man"):], "package": source_package}
        rows[split_of(group_of(path, source_package), SPLIT_SHARES)].append(row)
    return rows, stats, used


def sample(rows: list[dict], size: int) -> list[dict]:
    """At most `size` rows, a deterministic pseudo-random choice (by hash of name and section), in that order."""
    return sorted(rows, key=lambda r: hashlib.sha256(f"{r['name']}({r['section']})".encode()).hexdigest())[:size]


def composition(rows: list[dict]) -> dict[str, int]:
    gcloud = sum(r["package"] == "google-cloud-cli" for r in rows)
    return {"google-cloud-cli": gcloud, "other packages": len(rows) - gcloud,
            "packages": len({r["package"] for r in rows})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size_arguments(parser, "cache/real/manpages")
    a = parser.parse_args()
    rows, stats, used = collect()
    # "columns": the Config fields bench_quality.py --real passes for this corpus
    manifest = {"columns": {"dataset_input_field": "description", "dataset_target_field": "summary"},
                "python": sys.version.split()[0], "candidates": {s: len(r) for s, r in rows.items()},
                "filter": stats, "source_packages": dict(sorted(used.items()))}
    chosen = {split: sample(rows[split], getattr(a, split)) for split in ("train", "validation", "test")}
    write_corpus(a.out, chosen, manifest, "Built by bench/build_man_corpus.py (man page NAME summaries from "
                 "DESCRIPTION).", composition)
    print(json.dumps({k: v for k, v in manifest.items() if k != "source_packages"}, indent=2))
    print(f"{len(used)} source packages, listed in {a.out / 'README.md'}")


if __name__ == "__main__":
    main()
