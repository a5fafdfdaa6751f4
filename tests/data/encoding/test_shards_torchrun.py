"""`--mode preprocess` under torchrun, 2 CPU processes (gloo): every rank encodes its share, the result is the
cache one process builds, and a build killed half-way never looks complete. Slow: two processes under torchrun,
~15-30 s each; tests/data/encoding/test_shards.py checks the same merge with threads as ranks in the default run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentbridge.cached_latents import ensure_cache
from latentbridge.config_sources import write_config_file
from latentbridge.data.cache import MANIFEST
from latentbridge.data.encoding import Shards
from latentbridge.files import FILE_HASH
from tests.factories import assets_config

ROOT = Path(__file__).resolve().parents[3]


def _config(root: Path, tmp: Path, **overrides):
    return assets_config(root, **{"preprocess_cache_dir": str(tmp / "sharded"), "preprocess_chunk_size": 48,
                                  "preprocess_batch_size": 16, "use_tui": False, **overrides})


def _torchrun(config, tmp: Path, **popen):
    write_config_file(config, str(tmp / "run.yaml"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "main.py",
           "--mode", "preprocess", "--config", str(tmp / "run.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


@pytest.mark.slow
def test_two_processes_build_the_cache_one_process_builds(tiny_root, tmp_path):
    config = _config(tiny_root, tmp_path, max_train_samples=150, pretrain_middle_max_samples=150)
    run = _torchrun(config, tmp_path)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out[-3000:]
    assert out.count("Cache built") == 1  # rank 0 reports
    single = ensure_cache(config.replace(preprocess_cache_dir=str(tmp_path / "single")), log=lambda m: None,
                          shards=Shards()).cache
    sharded = next((tmp_path / "sharded").glob(f"*/{MANIFEST}")).parent
    assert sharded.name == single.folder.name
    assert _files(sharded) == _files(single.folder)  # every record, byte for byte, in the same order
    a, b = (json.loads((f / MANIFEST).read_text()) for f in (sharded, single.folder))
    own = ("created_at", FILE_HASH)  # the manifest digest covers created_at
    assert {k: v for k, v in a.items() if k not in own} == {k: v for k, v in b.items() if k not in own}


@pytest.mark.slow
def test_a_sharded_build_killed_half_way_never_looks_complete(tiny_root, tmp_path):
    config = _config(tiny_root, tmp_path, preprocess_chunk_size=16, max_train_samples=400,
                     pretrain_middle_max_samples=400, pretrain_adapter_max_samples=400)
    run = _torchrun(config, tmp_path)
    cache_root = tmp_path / "sharded"
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # until rank 1 is writing its shard
            if list(cache_root.glob(".tmp-*/shards/1/*/*.jsonl")):
                break
            assert run.poll() is None, run.stdout.read()[-3000:]
            time.sleep(0.05)
        os.killpg(run.pid, signal.SIGKILL)  # torchrun and both ranks, as a lost machine would
        run.wait(30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert not list(cache_root.rglob(MANIFEST))
    assert [p.name for p in cache_root.iterdir() if not p.name.startswith(".")] == []
    again = ensure_cache(config, log=lambda m: None, shards=Shards())
    assert not again.reused and len(again.cache.split("dialogue", "train")) == 400
    assert not list(cache_root.glob(".tmp-*"))  # the killed build's folder was swept
