"""Encoding a chunk: length-sorted batches cut padding and keep the order."""

from __future__ import annotations

import numpy as np

from latentbridge.data.encoding import encode_batched

from tests.factories import FakeEncoder


def test_length_sorting_cuts_padding(tokenizer):
    seqs = [[5] * n for n in np.random.default_rng(0).integers(3, 60, 256)]
    sorted_enc, plain_enc = FakeEncoder(len(tokenizer)), FakeEncoder(len(tokenizer))
    a = encode_batched(sorted_enc, seqs, 0, 16, sort_by_length=True)
    b = encode_batched(plain_enc, seqs, 0, 16, sort_by_length=False)
    padded = lambda enc: sum(bsz * t for bsz, t in enc.calls)
    assert padded(sorted_enc) < 0.75 * padded(plain_enc)
    for x, y in zip(a, b):  # same results, original order
        np.testing.assert_allclose(x, y, atol=1e-5)
