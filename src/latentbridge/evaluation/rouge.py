"""ROUGE through Google's `rouge-score` package (use_stemmer=True), the scorer the SAMSum literature reports.

ROUGE-Lsum scores summary-level LCS over sentences separated by newlines. The package can split with
nltk's punkt model, which is a download this offline project never makes, so sentences are split
here with a regex (after `.`, `!` or `?` followed by whitespace) and joined with newlines; the other
three types ignore newlines. Scores are F-measures in [0, 1], averaged over examples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
SCORER_NAME = "rouge-score (google-research) {version}, use_stemmer=True, F-measure; rougeLsum sentences split by regex"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def scorer_description() -> str:
    """The scorer as the report names it, with the package's installed version."""
    try:
        v = version("rouge-score")
    except PackageNotFoundError:  # pragma: no cover - the package is a requirement
        v = "unknown version"
    return SCORER_NAME.format(version=v)


def split_sentences(text: str) -> str:
    """One sentence per line, as rougeLsum expects."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


@dataclass(frozen=True)
class RougeResult:
    """Mean F-measures over the examples, plus the per-example values (same order as the inputs)."""

    mean: dict[str, float]
    per_example: dict[str, list[float]]

    def as_dict(self) -> dict[str, float]:
        return dict(self.mean)


def _scorer(types: Sequence[str] = ROUGE_TYPES):
    return rouge_scorer.RougeScorer(list(types), use_stemmer=True)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> RougeResult:
    """ROUGE-1/2/L/Lsum F-measures of each prediction against its reference; means over the pairs."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    scorer = _scorer()
    per = {t: [] for t in ROUGE_TYPES}
    for pred, ref in zip(predictions, references):
        scores = scorer.score(split_sentences(ref), split_sentences(pred))
        for t in ROUGE_TYPES:
            per[t].append(float(scores[t].fmeasure))
    mean = {t: (sum(v) / len(v) if v else 0.0) for t, v in per.items()}
    return RougeResult(mean, per)


def mean_rouge_l_against(candidates: Sequence[str], references: Sequence[str]) -> list[float]:
    """For each candidate, its mean ROUGE-L F-measure against every reference (the constant baseline's
    selection score). Tokenises each text once: len(candidates) x len(references) LCS computations."""
    scorer = _scorer(("rougeL",))
    tokenize = getattr(scorer, "_tokenizer", None)
    lcs = getattr(rouge_scorer, "_score_lcs", None)
    if tokenize is None or lcs is None:  # another rouge-score version: the slower public path
        return [sum(scorer.score(r, c)["rougeL"].fmeasure for r in references) / max(1, len(references))
                for c in candidates]
    ref_tokens = [tokenize.tokenize(r) for r in references]
    out = []
    for c in candidates:
        ct = tokenize.tokenize(c)
        out.append(sum(lcs(rt, ct).fmeasure for rt in ref_tokens) / max(1, len(ref_tokens)))
    return out
