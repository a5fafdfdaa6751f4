"""The bundled corpus: deterministic, SAMSum-shaped, varied enough that summaries depend on dialogues."""

import json
import subprocess
import sys
from pathlib import Path

from latentbridge.data.corpus import SPLIT_SIZES, corpus_paths, corpus_texts, write_corpus

REPO = Path(__file__).resolve().parents[2]


def _read_all(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


def test_corpus_is_byte_identical_across_runs(tmp_path):
    write_corpus(tmp_path / "a", seed=0)
    # a separate interpreter, with a different hash seed, must write the same bytes
    code = "import sys; from pathlib import Path; from latentbridge.data.corpus import write_corpus; write_corpus(Path(sys.argv[1]), 0)"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], check=True, cwd=REPO,
                   env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    a, b = _read_all(tmp_path / "a"), _read_all(tmp_path / "b")
    assert sorted(a) == ["pretrain/arxiv.jsonl", "pretrain/english.jsonl", "pretrain/wikitext.jsonl",
                         "samsum/test.jsonl", "samsum/train.jsonl", "samsum/validation.jsonl"]
    assert a == b
    assert not list((tmp_path / "a").rglob("*.tmp*"))


def test_different_seed_gives_different_corpus(tmp_path):
    assert corpus_texts(0) != corpus_texts(1)


def test_samsum_schema_and_split_sizes(tmp_path):
    write_corpus(tmp_path)
    paths = corpus_paths(tmp_path)
    ids = set()
    for split, size in SPLIT_SIZES.items():
        rows = [json.loads(line) for line in (paths["dataset"] / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == size
        for row in rows:
            assert set(row) == {"id", "dialogue", "summary"}
            assert ":" in row["dialogue"].splitlines()[0] and row["summary"]
            ids.add(row["id"])
    assert len(ids) == sum(SPLIT_SIZES.values())
    for name in ("wikitext", "arxiv", "english"):
        rows = [json.loads(line) for line in paths[name].read_text().splitlines()]
        assert rows and all(set(r) == {"text"} and r["text"].count(". ") >= 2 for r in rows)


def test_summaries_depend_on_dialogue_content():
    from latentbridge.data.corpus import dialogue_rows

    train = dialogue_rows(0)["train"]
    # nearly every summary is distinct, and names a speaker of its own dialogue
    assert len({r["summary"] for r in train}) > 0.9 * len(train)
    for r in train:
        speakers = {line.split(":", 1)[0] for line in r["dialogue"].splitlines()}
        assert any(s in r["summary"] for s in speakers)
    lengths = [len(r["dialogue"].splitlines()) for r in train]
    assert min(lengths) <= 3 and max(lengths) >= 8
