"""A reused cache is checked by content: every file damaged in place is caught when the cache is opened, named,
and rebuilt when preprocessing may run; the leftovers of killed builds do not survive the next start, and a
second builder of a cache being built stops naming the first (two real processes)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentbridge.cached_latents import ensure_cache
from latentbridge.data.cache import publish as cache_publish
from latentbridge.data.cache import MANIFEST, build_lock, open_cache
from latentbridge.errors import UserError

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("dialogue/train", "dialogue/validation", "dialogue/test", "pretrain/train", "pretrain/validation")
JSONL_FILES = [f"{s}.{kind}" for s in SPLITS for kind in ("jsonl", "offsets.npy", "sources.npy")] + \
              ["encoder_state.safetensors", MANIFEST]
NPY_FILES = JSONL_FILES + [f"{s}.{column}.npy" for s in SPLITS for column in
                           ("input_latents", "input_scales", "target_latents", "target_scales", "target_ids", "lengths")]
MATRIX = [pytest.param("jsonl", name, id=f"jsonl:{name}") for name in JSONL_FILES] + \
         [pytest.param("npy", name, id=f"npy:{name}") for name in sorted(set(NPY_FILES) - set(JSONL_FILES))]


def cache_folder(config) -> Path:
    (folder,) = [p for p in Path(config.preprocess_cache_dir).iterdir() if (p / MANIFEST).exists()]
    return folder


def flip_one_byte(path: Path) -> None:
    """Change one byte in the middle, keeping the size (what reuse used to check): in the manifest, one digit
    of a recorded value, so that it stays valid JSON and only its own digest can tell."""
    data = bytearray(path.read_bytes())
    if path.name == MANIFEST:
        at = data.index(b'"count": ') + len(b'"count": ')
        data[at] = ord("1") if data[at] != ord("1") else ord("2")
    else:
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt, names", [("jsonl", JSONL_FILES), ("npy", NPY_FILES)])
def test_the_matrix_covers_every_file_of_the_cache(intact_caches, fmt, names):
    folder = cache_folder(intact_caches[fmt])
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(names)


@pytest.mark.parametrize("cache_copy, name", MATRIX, indirect=["cache_copy"])
def test_a_file_damaged_in_place_stops_reuse_naming_that_file(cache_copy, name):
    config = cache_copy
    flip_one_byte(cache_folder(config) / name)
    with pytest.raises(UserError) as error:
        ensure_cache(config, log=lambda m: None, allow_build=False)  # run_preprocessing off: exit 2
    assert str(cache_folder(config) / name) in str(error.value)
    assert "corrupted" in str(error.value)


@pytest.mark.parametrize("cache_copy, name", [("jsonl", "dialogue/train.offsets.npy"),
                                               ("npy", "dialogue/train.input_latents.npy")], indirect=["cache_copy"])
def test_a_damaged_cache_is_rebuilt_when_preprocessing_may_run(cache_copy, name):
    config = cache_copy
    flip_one_byte(cache_folder(config) / name)
    said: list[str] = []
    result = ensure_cache(config, log=said.append)
    assert not result.reused and any("Rebuilding the cache" in s and name in s for s in said)
    open_cache(result.cache.folder, full_check=True)
    assert not [p for p in Path(config.preprocess_cache_dir).iterdir() if p.name.startswith((".tmp-", ".trash-"))]


@pytest.mark.parametrize("cache_copy", ["jsonl"], indirect=True)
def test_latents_overwritten_in_every_record_are_caught_before_training(cache_copy):
    """The campaign's case: 40 base64 characters of the latents overwritten in every record, sizes kept."""
    path = cache_folder(cache_copy) / "dialogue/train.jsonl"
    lines = []
    for line in path.read_bytes().splitlines(keepends=True):
        record = json.loads(line)
        other = base64.b64encode(bytes(30)).decode()  # 40 characters
        record["input_latents"] = other + record["input_latents"][40:]
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
    path.write_bytes(b"".join(lines))
    with pytest.raises(UserError, match="train.jsonl.*checksum mismatch"):
        ensure_cache(cache_copy, log=lambda m: None, allow_build=False)


@pytest.mark.parametrize("cache_copy", ["jsonl"], indirect=True)
def test_a_damaged_offsets_index_is_blamed_on_the_index_even_without_the_digests(cache_copy):
    path = cache_folder(cache_copy) / "dialogue/train.offsets.npy"
    offsets = np.load(path)
    offsets[[3, 4]] = offsets[[4, 3]]  # same size, still a valid array: the lines no longer match
    np.save(path, offsets)
    with pytest.raises(UserError) as error:
        open_cache(cache_folder(cache_copy)).split("dialogue", "train")  # sizes only: the reader's own check
    assert "train.offsets.npy" in str(error.value) and "train.jsonl is corrupted" not in str(error.value)


@pytest.mark.parametrize("cache_copy", ["jsonl"], indirect=True)
def test_leftovers_of_killed_builds_do_not_survive_the_next_start(cache_copy):
    root = Path(cache_copy.preprocess_cache_dir)
    name = cache_folder(cache_copy).name
    leftovers = [root / f".trash-{name}-somehost-4242", root / f".tmp-{name}-somehost-4243",
                 root / ".tmp-0123456789abcdef-otherhost-7"]  # another cache's, without any lock file
    for folder in leftovers:
        (folder / "dialogue").mkdir(parents=True)
        (folder / "dialogue" / "train.jsonl").write_text("{}\n")
    assert ensure_cache(cache_copy, log=lambda m: None).reused
    assert not any(folder.exists() for folder in leftovers)


BUILDER = """
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from latentbridge.data.encoding import build_cache
from latentbridge.data.sources import load_collection
from tests.factories import FakeEncoder, corpus_data_spec, fake_tokenizers, make_tokenizer, small_cache_spec
tok = make_tokenizer()
inner = FakeEncoder(len(tok))
def slow(ids, mask):
    print("encoding", flush=True)
    time.sleep(0.5)
    return inner(ids, mask)
ds = corpus_data_spec(Path(sys.argv[1]), dialogue_max_train=64)
build_cache(Path(sys.argv[2]), {"model": "fake"}, lambda: {"dialogue": load_collection(ds, "dialogue")},
            lambda: (fake_tokenizers(tok), slow if sys.argv[3] == "slow" else inner),
            small_cache_spec(batch_size=4, chunk_size=4), log=print)
print("built", flush=True)
"""


def builder(corpus: Path, root: Path, speed: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILDER, str(corpus), str(root), speed], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("cache_copy", ["jsonl"], indirect=True)
def test_a_cache_being_built_stops_a_second_builder_naming_the_first(cache_copy, monkeypatch):
    monkeypatch.setattr(cache_publish, "_SWEEP_WAIT_S", 0.1)
    folder = cache_folder(cache_copy)
    flip_one_byte(folder / "dialogue/train.jsonl")  # so that this start has to build
    with build_lock(folder):  # another builder, as far as flock is concerned
        expected = f"{folder} (preprocess_cache_dir) is in use by another run (pid {os.getpid()} on "
        with pytest.raises(UserError, match=re.escape(expected)):
            ensure_cache(cache_copy, log=lambda m: None)
    assert not ensure_cache(cache_copy, log=lambda m: None).reused


@pytest.mark.slow
def test_a_second_builder_stops_naming_the_first_which_a_kill_frees(tmp_path):
    """Two real processes: the first builds slowly, the second stops naming it; after a kill -9 of the first,
    a third builds and sweeps the first's temporary folder. Slow: three Python processes, ~25 s."""
    from latentbridge.data.corpus import write_corpus

    write_corpus(tmp_path / "corpus", seed=0)
    root = tmp_path / "cache"
    first = builder(tmp_path / "corpus", root, "slow")
    try:
        assert first.stdout.readline().strip() == "encoding", first.stderr.read()
        (tmp_dir,) = root.glob(".tmp-*")
        second = builder(tmp_path / "corpus", root, "fast")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 1 and f"is in use by another run (pid {first.pid} on " in err
        assert tmp_dir.exists()  # a live build's folder is left alone
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = builder(tmp_path / "corpus", root, "fast")
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0 and out.strip().endswith("built"), err
    assert not tmp_dir.exists() and not list(root.glob(".tmp-*"))
    (folder,) = [p for p in root.iterdir() if (p / MANIFEST).exists()]
    open_cache(folder, full_check=True)


KILLED_IN_TRASH_PHASE = """
import json, os, shutil, signal, sys
from pathlib import Path
from latentbridge.cached_latents import ensure_cache
from latentbridge.config import Config

real_rmtree = shutil.rmtree
def kill_before_emptying_the_trash(path, *args, **kwargs):
    if Path(path).name.startswith(".trash-"):
        print("published; killed before the old cache is deleted", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return real_rmtree(path, *args, **kwargs)
shutil.rmtree = kill_before_emptying_the_trash
ensure_cache(Config(**json.loads(sys.argv[1])), log=lambda m: None)
"""


@pytest.mark.slow
@pytest.mark.parametrize("cache_copy", ["jsonl", "npy"], indirect=True)
def test_a_kill_in_the_trash_phase_leaves_a_complete_cache_and_the_next_start_sweeps_the_trash(cache_copy):
    """A rebuild publishes the new cache, then deletes the old one it moved aside: killed between the two (a
    real SIGKILL), the folder holds the complete new cache, and the next start reuses it and removes the old.
    Slow: a Python process per format that imports torch and rebuilds the cache."""
    import dataclasses

    folder = cache_folder(cache_copy)
    flip_one_byte(folder / "dialogue/train.jsonl")  # damaged: this start rebuilds and replaces it
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_TRASH_PHASE, json.dumps(dataclasses.asdict(cache_copy))],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL and "killed before" in killed.stdout, killed.stderr[-2000:]
    root = Path(cache_copy.preprocess_cache_dir)
    assert [p.name for p in root.iterdir() if p.name.startswith(".trash-")], "the kill left the old cache aside"
    assert ensure_cache(cache_copy, log=lambda m: None).reused  # the published cache verifies complete
    assert not [p for p in root.iterdir() if p.name.startswith((".trash-", ".tmp-"))]
