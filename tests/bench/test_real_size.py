"""bench/real_size.py at reduced caps: the whole pipeline at the published sizes (random weights), offline."""

import pytest

from tests.factories import import_bench


@pytest.mark.slow
def test_the_real_size_check_runs_every_stage_and_reports_its_cost(tmp_path):
    real_size = import_bench("real_size")
    rows = real_size.main(["--samples", "4", "--batch-size", "2", "--eval-samples", "2", "--work", str(tmp_path)])
    assert [row[0] for row in rows] == ["pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter"]
    for stage, steps, seconds, _tokens, peak, doctor, _ratio in rows:
        assert steps == 2 and float(seconds) > 0, stage  # 4 examples at batch 2
        assert float(peak) > 0 and float(doctor) > 0, stage
