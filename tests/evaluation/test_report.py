"""The eval report's verdict line and its explanation of the gold-latents row."""

from latentbridge.evaluation.report import gold_latents_note, verdict


def scores(rouge_l: float) -> dict:
    return {"rougeL": rouge_l}


def test_verdict_says_a_latent_system_that_loses_to_the_constant_sentence():
    line = verdict({"latent": scores(0.05), "constant": scores(0.12), "direct": scores(0.10)})
    assert "loses to the constant baseline (12.00) by 7.00 points (-58%)" in line
    assert "loses to the direct baseline (10.00) by 5.00 points (-50%)" in line
    assert "no better than one fixed sentence" in line


def test_verdict_says_by_how_much_the_latent_system_beats_a_baseline():
    line = verdict({"latent": scores(0.6157), "constant": scores(0.2673), "direct": scores(0.6302)})
    assert line.startswith("Verdict (ROUGE-L F1 x 100): the latent pipeline (61.57)")
    assert "beats the constant baseline (26.73) by 34.84 points (+130%)" in line
    assert "loses to the direct baseline (63.02) by 1.45 points (-2%)" in line
    assert "fixed sentence" not in line


def test_verdict_without_baselines_says_how_to_get_them():
    assert "run eval with --baselines" in verdict({"latent": scores(0.3)})


def test_gold_latents_note_gives_the_numbers_when_gold_scores_below_the_pipeline():
    use = {"pipeline": {"loss_true_prefix": 0.744}, "gold": {"loss_true_prefix": 0.787}}
    note = gold_latents_note({"latent": scores(0.6157), "reconstruction": scores(0.5178)}, use)
    assert "stage 4 fine-tunes the adapter on the middle's outputs" in note
    assert "here 51.78 vs 61.57 ROUGE-L" in note and "(0.787) than from the middle's (0.744)" in note
    above = gold_latents_note({"latent": scores(0.3), "reconstruction": scores(0.5)}, use)
    assert "here" not in above
    assert gold_latents_note({"latent": scores(0.3)}, use) is None
