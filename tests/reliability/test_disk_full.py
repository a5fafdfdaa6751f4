"""A full disk under output_dir or preprocess_cache_dir: exit 2 naming the path, every earlier file intact.

The default run injects ENOSPC into the writers (os.write, fsync, the cache's writes and its space
reservation); the slow tests fill a real tmpfs mounted in a user and mount namespace.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest

from latentbridge import files
from latentbridge.cached_latents import ensure_cache
from latentbridge.config_sources import write_config_file
from latentbridge.data import cache as cache_module
from latentbridge.data.cache import open_cache
from latentbridge.errors import UserError
from latentbridge.training.metrics import MetricsWriteError, MetricsWriter, StepMetrics
from tests.factories import MAIN, cache_folders, namespace_with_tmpfs_available, run_on_small_tmpfs, small_corpus_config, train_config


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def line(step: int) -> StepMetrics:
    return StepMetrics("pretrain_middle", 0, step, {"total": 1.0 / step}, lr=1e-3)


def steps_in(path: Path) -> list[int]:
    return [json.loads(text)["step"] for text in path.read_text().splitlines()]


# ------------------------------------------------------------------------------------- metrics and summary


def disk_with_room(room: int):
    """os.write on a disk with `room` bytes left: a short write once it fills up, then ENOSPC."""
    real, left = os.write, [room]

    def write(fd: int, data: bytes) -> int:
        if left[0] == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(len(data), left[0])
        left[0] -= n
        return real(fd, bytes(data[:n]))

    return write


@pytest.mark.parametrize("room", [0, 17])  # refused outright, or a short write that fills the disk mid-line
def test_a_metrics_line_is_written_whole_or_not_at_all(room, tmp_path, monkeypatch):
    writer = MetricsWriter(tmp_path)
    writer.write(line(1))
    writer.write(line(2))
    monkeypatch.setattr("latentbridge.training.metrics.os.write", disk_with_room(room))
    with pytest.raises(MetricsWriteError, match=r"Cannot append to .*metrics.jsonl \(output_dir\): No space left"):
        writer.write(line(3))
    monkeypatch.undo()
    assert steps_in(writer.path) == [1, 2]  # no part of step 3's line
    writer.write(line(4))  # space again: the file goes on with whole lines
    writer.close()
    assert steps_in(writer.path) == [1, 2, 4]


def test_a_full_disk_keeps_the_previous_summary_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    with MetricsWriter(tmp_path) as writer:
        writer.write_summary({"global_step": 5})
        monkeypatch.setattr(files.os, "fsync", full_disk)  # the file system reports it when flushing
        with pytest.raises(MetricsWriteError, match=r"summary.json \(output_dir\): No space left"):
            writer.write_summary({"global_step": 9})
    monkeypatch.undo()
    assert json.loads((tmp_path / "summary.json").read_text()) == {"global_step": 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "summary.json"]


def test_the_summary_error_after_a_refused_line_names_the_line(tmp_path, monkeypatch):
    """The run stops on the refused metrics line; the summary written on the way out fails on the same disk,
    and the error reported is where it started."""
    with MetricsWriter(tmp_path) as writer:
        monkeypatch.setattr("latentbridge.training.metrics.os.write", full_disk)
        with pytest.raises(MetricsWriteError):
            writer.write(line(1))
        monkeypatch.setattr(files.os, "fsync", full_disk)
        with pytest.raises(MetricsWriteError, match="Cannot append to .*metrics.jsonl"):
            writer.write_summary({"global_step": 1})


# ------------------------------------------------------------------------------------- the cache


@pytest.fixture(scope="module")
def earlier_cache(small_root, tmp_path_factory):
    """A complete cache under a shared preprocess_cache_dir, built before the disk fills up."""
    config = small_corpus_config(small_root, tmp_path_factory.mktemp("disk"))
    return config, ensure_cache(config, log=lambda m: None).cache


def fail_cache_writes(monkeypatch, fmt: str) -> None:
    if fmt == "jsonl":  # the 20th record of the build meets a full disk
        real = cache_module.SplitWriter.write
        count = iter(range(10**9))
        monkeypatch.setattr(cache_module.SplitWriter, "write",
                            lambda self, *a: full_disk() if next(count) == 20 else real(self, *a))
    else:  # the third block of array rows meets a full disk
        real_append = cache_module.NpyAppender.append
        blocks = iter(range(10**9))
        monkeypatch.setattr(cache_module.NpyAppender, "append",
                            lambda self, *a: full_disk() if next(blocks) == 3 else real_append(self, *a))


@pytest.mark.parametrize("fmt", ["jsonl", "npy"])
def test_a_full_disk_while_building_the_cache_exits_2_and_keeps_the_earlier_cache(fmt, earlier_cache, monkeypatch):
    config, earlier = earlier_cache
    other = config.replace(preprocess_format=fmt, cache_store_text=True)  # another fingerprint, same folder
    before = {p: p.read_bytes() for p in earlier.folder.rglob("*") if p.is_file()}
    fail_cache_writes(monkeypatch, fmt)
    with pytest.raises(UserError, match=r"preprocess_cache_dir .* \(--preprocess-cache-dir\): No space left"):
        ensure_cache(other, log=lambda m: None)
    monkeypatch.undo()
    root = Path(config.preprocess_cache_dir)
    assert cache_folders(root) == [earlier.folder.name]  # no half-built folder left
    assert {p: p.read_bytes() for p in earlier.folder.rglob("*") if p.is_file()} == before
    assert len(open_cache(earlier.folder).split("dialogue", "train")) == len(earlier.split("dialogue", "train"))


def test_other_os_errors_are_not_blamed_on_the_disk(earlier_cache, monkeypatch):
    config, _ = earlier_cache
    monkeypatch.setattr(cache_module.SplitWriter, "write", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O")))
    with pytest.raises(OSError, match="I/O"):
        ensure_cache(config.replace(cache_store_text=True, preprocess_format="jsonl"), log=lambda m: None)


# ------------------------------------------------------------------------------------- a real, small file system

needs_tmpfs = pytest.mark.skipif(not namespace_with_tmpfs_available(),
                                 reason="no unprivileged tmpfs (unshare -rm) on this machine")


@pytest.mark.slow
@needs_tmpfs
def test_training_on_a_full_output_dir_exits_2_with_whole_metric_lines(tiny_root, tmp_path):
    config = train_config(tiny_root, tmp_path).replace(log_every=1, output_dir="small/run")
    write_config_file(config, str(tmp_path / "run.yaml"))
    check = "import json, sys; [json.loads(l) for l in open(sys.argv[1])]; print('WHOLE', sum(1 for _ in open(sys.argv[1])))"
    script = (f"python {MAIN} --mode train --config run.yaml; echo RC=$?; "
              f"python -c {check!r} small/run/metrics.jsonl")
    run = run_on_small_tmpfs(tmp_path / "small", "4k", script, cwd=tmp_path)
    assert "RC=2" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Cannot append to small/run/metrics.jsonl (output_dir): No space left on device" in run.stderr
    assert "Traceback" not in run.stderr
    assert "WHOLE" in run.stdout  # every line of the full file parses


@pytest.mark.slow
@needs_tmpfs
@pytest.mark.parametrize("fmt", ["jsonl", "npy"])
def test_preprocessing_on_a_full_disk_exits_2_and_leaves_the_earlier_cache_readable(fmt, small_root, tmp_path):
    """A first cache fits; a second one (storing text too) meets the full disk. Checked inside the namespace,
    where the tmpfs lives."""
    first = small_corpus_config(small_root, tmp_path, preprocess_cache_dir="small/cache")
    write_config_file(first, str(tmp_path / "first.yaml"))
    write_config_file(first.replace(cache_store_text=True, preprocess_format=fmt), str(tmp_path / "second.yaml"))
    check = ("from pathlib import Path; from latentbridge.data.cache import open_cache; "
             "names = sorted(p.name for p in Path('small/cache').iterdir() if not p.name.startswith('.lock-')); "
             "print('FOLDERS', names); "
             "print('RECORDS', len(open_cache(Path('small/cache') / names[0]).split('dialogue', 'train')))")
    script = (f"python {MAIN} --mode preprocess --config first.yaml && "
              "(head -c 100M /dev/zero > small/filler 2>/dev/null; "
              f"python {MAIN} --mode preprocess --config second.yaml; echo RC=$?; rm small/filler; "
              f"python -c {check!r})")
    run = run_on_small_tmpfs(tmp_path / "small", "16m", script, cwd=tmp_path)
    out = run.stdout
    assert "RC=2" in out, out[-2000:] + run.stderr[-2000:]
    assert "(--preprocess-cache-dir): No space left on device" in run.stderr and "Traceback" not in run.stderr
    built = re.search(r"Cache built: small/cache/(\w+) ", out).group(1)
    assert f"FOLDERS ['{built}']" in out  # the first cache, and no half-built or trash folder beside it
    records = re.search(r"dialogue/train: (\d+) records", out).group(1)  # as the first build reported
    assert f"RECORDS {records}" in out
