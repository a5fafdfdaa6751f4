"""The ROUGE wrapper: the google-research scorer with stemming, sentence splitting for ROUGE-Lsum."""

import pytest

from latentbridge.evaluation.rouge import ROUGE_TYPES, mean_rouge_l_against, rouge_scores, scorer_description, split_sentences


def test_identical_texts_score_one_and_disjoint_zero():
    result = rouge_scores(["Anna will bring the keys.", "xyz"], ["Anna will bring the keys.", "Ben is late."])
    assert set(result.mean) == set(ROUGE_TYPES)
    assert all(result.per_example[t][0] == pytest.approx(1.0) for t in ROUGE_TYPES)
    assert all(result.per_example[t][1] == 0.0 for t in ROUGE_TYPES)


def test_stemming_matches_inflections():
    assert rouge_scores(["they are running"], ["they are runs"]).mean["rouge1"] == pytest.approx(1.0)


def test_lsum_splits_sentences_but_l_does_not():
    assert split_sentences("Anna comes. Ben stays!  Why?") == "Anna comes.\nBen stays!\nWhy?"
    swapped = rouge_scores(["Ben stays home. Anna comes late."], ["Anna comes late. Ben stays home."]).mean
    assert swapped["rougeLsum"] > swapped["rougeL"]


def test_lengths_must_match():
    with pytest.raises(ValueError):
        rouge_scores(["a"], ["a", "b"])


def test_mean_rouge_l_against_matches_the_scorer():
    refs = ["Anna will bring the keys at 5.", "Ben lost his wallet."]
    cands = ["Anna will bring the wallet.", "Ben lost the keys at 5."]
    fast = mean_rouge_l_against(cands, refs)
    slow = [sum(rouge_scores([c], [r]).mean["rougeL"] for r in refs) / 2 for c in cands]
    assert fast == pytest.approx(slow)


def test_scorer_is_named_with_its_version():
    assert "rouge-score" in scorer_description() and "use_stemmer=True" in scorer_description()
