"""bench/bench_gpu.py: its --smoke mode on this CPU (tiny models, every stage, 1-2 steps), and its FLOP count."""

import dataclasses
import tempfile

from latentbridge.models.memory import part_counts, published_config
from latentbridge.models.specs import Runtime, StepShape
from latentbridge.recipe import model_spec
from tests.factories import import_bench, tiny_config


def test_smoke_runs_every_stage_and_prints_the_table_leaving_no_temporary_files(tiny_root, tmp_path, monkeypatch,
                                                                                capsys):
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))  # where tempfile would put them
    bench_gpu = import_bench("bench_gpu")
    rows = bench_gpu.main(["--smoke", "--assets", str(tiny_root), "--steps", "1", "--peak-tflops", "1"])
    assert list(system_tmp.iterdir()) == []
    assert [row[2] for row in rows] == ["pretrain_middle", "pretrain_adapter", "finetune_middle", "finetune_adapter"]
    for row in rows:
        assert float(row[5]) > 0 and row[8].endswith("%")  # samples/s, MFU against the given peak
    assert "| attention | compile | stage |" in capsys.readouterr().out


def test_flops_grow_with_the_batch_and_with_the_decoder_layers_that_train():
    bench_gpu = import_bench("bench_gpu")
    config = tiny_config(modernbert_model="answerdotai/ModernBERT-base", gpt2_model="google/gemma-3-270m-it",
                         decoder_unfrozen_layers=2)
    enc, dec = published_config(config.modernbert_model), published_config(config.gpt2_model)
    counts = part_counts(model_spec(config, Runtime()), enc, dec)
    shape = StepShape(trains=frozenset({"adapter"}), decoder=True, encodes_live=False, batch_size=4, encoder_len=128,
                      prefix_len=50, target_len=64)
    one = bench_gpu.step_flops(shape, counts, enc, dec)
    assert bench_gpu.step_flops(dataclasses.replace(shape, batch_size=8), counts, enc, dec) > 1.99 * one
    trained = bench_gpu.step_flops(dataclasses.replace(shape, trains=frozenset({"adapter", "decoder"})), counts, enc, dec)
    tokens = 4 * (50 + 12 + 64)
    assert trained - one == 2 * bench_gpu.layer_params(counts["decoder"], dec) * 2 * tokens
    # the frozen 270m decoder: ~4 x its layer parameters per token (forward + input gradients) plus the LM head
    layers = bench_gpu.layer_params(counts["decoder"], dec) * dec.num_hidden_layers
    assert 4 * layers * tokens < one < 4 * layers * tokens + 4 * 640 * 262144 * 4 * 64 * 1.1


def test_peak_flops_are_looked_up_by_device_name():
    bench_gpu = import_bench("bench_gpu")
    assert bench_gpu.peak_tflops("NVIDIA H200", None) == 989.0
    assert bench_gpu.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert bench_gpu.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert bench_gpu.peak_tflops("Some GPU", None) is None and bench_gpu.peak_tflops("Some GPU", 100.0) == 100.0
