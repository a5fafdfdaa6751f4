"""bench/build_deb_corpus.py on a small dpkg status file: the pairs, the filters, the splits by source package."""

import json

from tests.factories import import_bench

STATUS = """Package: grep
Status: install ok installed
Version: 3.8-5
Description: GNU grep, egrep and fgrep
 'GNU grep' is a tool for searching text for lines that match a pattern,
 faster and with more options than the others.
 .
 A second paragraph.

Package: libfoo-dev
Status: install ok installed
Source: foo (1.2-1)
Version: 1.2-1+b1
Description: foo library - development files
 The foo library does many things for many programs on every system that
 anyone ever installed.
 .
 This package contains the development files.

Package: libfoo1
Status: install ok installed
Source: foo
Version: 1.2-1
Description: foo library - runtime
 The foo library does many things for many programs on every system that
 anyone ever installed.

Package: removed
Status: deinstall ok config-files
Description: a package no longer installed
 Its long description is long enough to be kept if it were still installed here.

Package: short
Status: install ok installed
Description: too short a description
 Just four words.
"""


def test_pairs_are_each_installed_package_s_synopsis_and_plain_long_description(tmp_path):
    deb = import_bench("build_deb_corpus")
    (tmp_path / "status").write_text(STATUS)
    rows, stats, versions = deb.collect(tmp_path / "status")
    kept = {r["package"]: r for split in rows.values() for r in split}
    assert set(kept) == {"grep", "libfoo-dev"}  # libfoo1 repeats libfoo-dev's description; short is too short
    assert kept["grep"]["synopsis"] == "GNU grep, egrep and fgrep"
    assert kept["grep"]["description"] == ("'GNU grep' is a tool for searching text for lines that match a pattern, "
                                          "faster and with more options than the others.\nA second paragraph.")
    assert kept["libfoo-dev"]["source"] == "foo" and versions["libfoo-dev"] == "1.2-1+b1"
    assert stats == {"packages": 4, "dropped_near_duplicate_description": 1, "dropped_description_length": 1}
    assert [split for split, split_rows in rows.items() if kept["libfoo-dev"] in split_rows] == \
        [deb.split_of("foo", deb.SPLIT_SHARES)]


def test_the_folder_names_its_columns_for_bench_quality(tmp_path, monkeypatch):
    deb, quality = import_bench("build_deb_corpus"), import_bench("bench_quality")
    (tmp_path / "status").write_text(STATUS)
    monkeypatch.setattr("sys.argv", ["build_deb_corpus.py", "--out", str(tmp_path / "out"), "--status",
                                     str(tmp_path / "status")])
    deb.main()
    assert quality.column_flags(tmp_path / "out") == ["--dataset-input-field", "description",
                                                      "--dataset-target-field", "synopsis"]
    written = [json.loads(line) for split in ("train", "validation", "test")
               for line in (tmp_path / "out" / f"{split}.jsonl").read_text().splitlines()]
    assert sorted(r["package"] for r in written) == ["grep", "libfoo-dev"]
