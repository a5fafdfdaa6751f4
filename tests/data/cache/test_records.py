"""The record codec: int8 quantisation keeps the latents' direction."""

from __future__ import annotations

import numpy as np

from latentbridge.data.cache import dequantize_int8, quantize_int8


def test_int8_latents_keep_mean_cosine_above_0_999():
    rng = np.random.default_rng(0)
    for x in (rng.standard_normal((512, 8, 256)), rng.standard_normal((512, 8, 256)) ** 3,
              rng.uniform(-1, 1, (512, 8, 768)) * rng.uniform(0.01, 100, (512, 8, 1))):
        q, s = quantize_int8(x)
        y = dequantize_int8(q, s)
        cos = (x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))
        assert cos.mean() >= 0.999 and q.dtype == np.int8 and s.dtype == np.float32
