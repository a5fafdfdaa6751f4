"""Baselines: the constant summary is the pool's best on the references; the direct decoder trains."""

import json

import pytest

from latentbridge.evaluation.baselines import (DirectTraining, adapter_stage_steps, constant_baseline, generate_direct,
                                               generate_zero_shot, has_chat_template, train_direct_baseline,
                                               zero_shot_prompt_ids)
from latentbridge.evaluation.rouge import mean_rouge_l_against
from latentbridge.models.specs import SamplingSpec


def test_constant_picks_the_best_mean_rouge_l_of_the_pool():
    train = ["Anna will bring the keys.", "Ben and Anna will meet at the cafe at 5.", "Tom lost his wallet."]
    refs = ["Anna and Ben will meet at the park at 5.", "Mia and Ben will meet at the cafe."]
    best = constant_baseline(train, refs, pool_size=10)
    scores = mean_rouge_l_against(train, refs)
    assert best.summary == train[scores.index(max(scores))]
    assert best.mean_rouge_l == pytest.approx(max(scores)) and best.pool_size == 3
    assert best.predict(2) == [best.summary] * 2


def test_constant_pool_is_bounded_and_seeded():
    train = [f"summary number {i}." for i in range(50)]
    a = constant_baseline(train, ["summary number 7."], pool_size=10, seed=1)
    b = constant_baseline(train, ["summary number 7."], pool_size=10, seed=1)
    assert a == b and a.pool_size == 10


def test_adapter_stage_steps_follow_the_schedule():
    assert adapter_stage_steps(2000, 32, 3, 1) == 3 * 63
    assert adapter_stage_steps(2000, 32, 3, 2) == 3 * 32


@pytest.fixture(scope="module")
def decoder(tiny_root):
    from latentbridge.models.decoder import load_decoder_backbone
    from latentbridge.models.specs import DecoderSpec

    name = str(tiny_root / "models" / "gemma3")
    model, tok = load_decoder_backbone(DecoderSpec(model=name), "sdpa")
    return model, tok, name


def test_direct_trains_every_parameter_for_the_given_steps_and_lowers_the_loss(decoder, tiny_root):
    model, tok, name = decoder
    rows = [json.loads(line) for line in (tiny_root / "data" / "samsum" / "train.jsonl").open()][:16]
    pairs = [(r["dialogue"], r["summary"]) for r in rows]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_direct_baseline(model, tok, pairs, DirectTraining(steps=6, lr=3e-3, batch_size=8, max_input_len=64,
                                                                     max_target_len=24), name=name)
    assert result.steps == 6 and result.examples_seen == 48
    assert result.losses[-1] < result.losses[0]
    changed = [n for n, p in model.named_parameters() if not p.detach().equal(before[n])]
    assert len(changed) == len(before)


def test_direct_generation_is_the_same_batched_or_alone(decoder):
    model, tok, name = decoder
    texts = ["Anna: lunch at 1? Ben: sure", "Tom: I lost my keys again, they were on the table. Mia: check the drawer"]
    greedy = SamplingSpec(max_new_tokens=6, do_sample=False)
    batched = generate_direct(model, tok, texts, greedy, name=name, max_input_len=64)
    alone = [generate_direct(model, tok, [t], greedy, name=name, max_input_len=64)[0] for t in texts]
    assert batched == alone


CHAT_TEMPLATE = ("{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
                 "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


@pytest.fixture
def chat_decoder(tiny_root):
    """The tiny decoder (fresh, untrained by other tests) with a Gemma-style chat template on its tokenizer."""
    from latentbridge.models.decoder import load_decoder_backbone
    from latentbridge.models.specs import DecoderSpec

    name = str(tiny_root / "models" / "gemma3")
    model, tok = load_decoder_backbone(DecoderSpec(model=name), "sdpa")
    tok.chat_template = CHAT_TEMPLATE
    return model, tok, name


def test_zero_shot_prompts_the_instruction_and_the_input_through_the_chat_template(chat_decoder):
    _, tok, _ = chat_decoder
    assert has_chat_template(tok)
    prompt = tok.decode(zero_shot_prompt_ids(tok, "Anna: lunch at 1? Ben: sure", max_input_len=64))
    assert "Summarize" in prompt and "lunch" in prompt and prompt.rstrip().endswith("model")
    short = tok.decode(zero_shot_prompt_ids(tok, "Anna: lunch at 1? Ben: sure", max_input_len=2))
    assert "Ben" not in short


def test_zero_shot_generates_from_the_untrained_decoder_batched_or_alone(chat_decoder):
    model, tok, name = chat_decoder
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    texts = ["Anna: lunch at 1? Ben: sure", "Tom: I lost my keys again. Mia: check the drawer"]
    greedy = SamplingSpec(max_new_tokens=6, do_sample=False)
    batched = generate_zero_shot(model, tok, texts, greedy, name=name, max_input_len=64)
    assert len(batched) == 2 and all(isinstance(t, str) for t in batched)
    assert batched == [generate_zero_shot(model, tok, [t], greedy, name=name, max_input_len=64)[0] for t in texts]
    assert all(p.detach().equal(before[n]) for n, p in model.named_parameters())  # nothing trains

