"""Issue 20: the shared tiny asset folder is never rebuilt under a run that uses it, whatever seed another run
uses; builders of one folder take turns under its lock and publish by rename."""

from __future__ import annotations

import shutil
import threading
import time

from latentbridge import assets
from latentbridge.recipe import with_tiny_assets
from tests.factories import assets_config


def _state(root):
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if ".lock" not in p.name}


def test_another_seed_leaves_the_shared_folder_alone(tiny_root, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(tiny_root, root, symlinks=True)
    before = _state(root)
    for seed in (7, 0, 123):
        with_tiny_assets(assets_config(root, seed=seed), log=lambda message: None)
    assert _state(root) == before


def test_concurrent_builders_build_once_and_readers_never_see_half(tmp_path):
    folder, built, seen = tmp_path / "data", [], []

    def build(tmp):
        built.append(threading.get_ident())
        (tmp / "a.txt").write_text("a")
        time.sleep(0.3)  # a slow build: the other builder must wait, not start its own
        (tmp / "b.txt").write_text("b")

    def reader():
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if folder.exists():
                seen.append(sorted(p.name for p in folder.iterdir()))

    threads = [threading.Thread(target=assets._build_atomically, args=(folder, {"v": 1}, build)) for _ in range(2)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert seen and all(names == ["a.txt", "b.txt", assets.MANIFEST] for names in seen)
    assert not [p for p in tmp_path.iterdir() if "tmp-" in p.name]
