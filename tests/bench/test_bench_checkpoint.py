"""bench/bench_checkpoint.py's spaced saves: every side ends with the checkpoints it keeps, one timing a round."""

from tests.factories import import_bench


def test_spaced_saves_keep_three_on_every_side_and_time_each_round(tmp_path):
    b = import_bench("bench_checkpoint")
    state = b.build_state(b.build_model(0), "cpu")
    r = b.spaced_saves(state, tmp_path, rounds=2, gap=0.0)
    assert set(r) == {"ours", "ours, pruning after the commit", "dcp"}
    assert all(len(m["save"]) == 2 for m in r.values())
    for folder in ("ours", "ours-after"):
        assert len([p for p in (tmp_path / folder).iterdir() if p.name.startswith("step-")]) == 3
    assert len(list(tmp_path.glob("dcp-*"))) == 3
