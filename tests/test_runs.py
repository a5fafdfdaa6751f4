"""Run folders (latentbridge.runs): numbered in order, `latest` naming the newest, a damaged or planted pointer
ignored, two runs started at once given two folders."""

from __future__ import annotations

import threading

from latentbridge.runs import LATEST, is_run_root, latest_run, new_run_folder, run_folders


def test_run_folders_are_numbered_in_order_and_latest_names_the_newest(tmp_path):
    assert latest_run(tmp_path) is None and not is_run_root(tmp_path)
    first, second = new_run_folder(tmp_path), new_run_folder(tmp_path)
    assert (first.name, second.name) == ("version_0", "version_1") and is_run_root(tmp_path)
    assert (tmp_path / LATEST).read_text() == "version_1\n" and latest_run(tmp_path) == second
    (tmp_path / "version_10").mkdir()  # numbers sort as numbers
    assert [p.name for p in run_folders(tmp_path)] == ["version_0", "version_1", "version_10"]
    assert new_run_folder(tmp_path).name == "version_11"


def test_a_pointer_naming_no_run_folder_of_the_root_is_ignored(tmp_path):
    new_run_folder(tmp_path)
    new_run_folder(tmp_path)
    (tmp_path / LATEST).write_text("../../etc\n")
    assert latest_run(tmp_path).name == "version_1"
    (tmp_path / LATEST).unlink()
    (tmp_path / LATEST).symlink_to(tmp_path / "version_0")
    assert latest_run(tmp_path).name == "version_1"  # a link is not the pointer this module writes


def test_a_symlink_named_like_a_run_is_not_a_run(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "version_5").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert run_folders(tmp_path) == [] and new_run_folder(tmp_path).name == "version_0"


def test_runs_started_at_once_get_folders_of_their_own(tmp_path):
    made: list[str] = []
    threads = [threading.Thread(target=lambda: made.append(new_run_folder(tmp_path).name)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(made, key=lambda n: int(n.split("_")[1])) == [f"version_{i}" for i in range(8)]
