"""Score a LatentBridge on (dialogue, summary) pairs, stage by stage.

One pass over the pairs in batches measures, for each batch:

    latents(dialogue) --middle--> predicted latents    vs latents(summary):  latent metrics
    predicted latents (cut at the stop latent) --adapter--> prefix --decoder--> text   ROUGE "latent"
    latents(summary) --adapter--> prefix --decoder--> text     ROUGE "reconstruction": what the adapter and
                                                               decoder make of perfect latents; the ceiling of
                                                               the latent path when the adapter was trained on
                                                               gold latents (stage 2, phase1); after stage 4 has
                                                               tuned the adapter to the middle's outputs it can
                                                               score below the latent path
    decoder loss of the reference summary with the true prefix vs a prefix shuffled within the batch
                                                               (prefix use; from both prefixes above)

So a shortfall can be placed: a low reconstruction score is the adapter/decoder's (or the compressor's),
a gap between reconstruction and the latent path is the middle's, a small shuffle gap means the decoder
barely reads its prefix.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from accelerate.utils import set_seed

from latentbridge.evaluation.latent_metrics import LatentMetricsAccumulator
from latentbridge.evaluation.rouge import rouge_scores
from latentbridge.models.backends import autocast


@dataclass
class PrefixUse:
    """Mean per-example decoder loss of the reference with its own prefix and with a shuffled one."""

    loss_true: float = 0.0
    loss_shuffled: float = 0.0
    n: int = 0

    def add(self, true: torch.Tensor, shuffled: torch.Tensor) -> None:
        self.loss_true += float(true.sum())
        self.loss_shuffled += float(shuffled.sum())
        self.n += int(true.numel())

    def as_dict(self) -> dict[str, Any]:
        n = max(1, self.n)
        t, s = self.loss_true / n, self.loss_shuffled / n
        return {"loss_true_prefix": t, "loss_shuffled_prefix": s, "gap": s - t, "n_examples": self.n}


@dataclass
class PathOutputs:
    latent: list[str] = field(default_factory=list)
    reconstruction: list[str] = field(default_factory=list)


def _prefix_losses(model: Any, prefix: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, into: PrefixUse) -> None:
    if prefix.shape[0] < 2:  # nothing to shuffle with
        return
    true = model.decoder.loss(prefix, ids, mask, reduction="none")
    shuffled = model.decoder.loss(prefix.roll(1, dims=0), ids, mask, reduction="none")
    into.add(true.float(), shuffled.float())


@torch.no_grad()
def evaluate_model(model: Any, dialogues: Sequence[str], summaries: Sequence[str], *, max_seq_len: int,
                   max_target_len: int, sampling: Any, batch_size: int, seed: Optional[int] = None,
                   reconstruction: bool = True) -> dict[str, Any]:
    """The latent path's ROUGE, the reconstruction ceiling, latent metrics and prefix use on the pairs.

    Returns {"outputs": PathOutputs, "rouge": {path: {type: F}}, "latent_metrics", "prefix_use", "seconds"}."""
    if seed is not None:
        set_seed(seed)
    start = time.perf_counter()
    device = model.device
    outputs, latents_acc = PathOutputs(), LatentMetricsAccumulator()
    use = {"pipeline": PrefixUse(), "gold": PrefixUse()}
    with autocast(device, model.compute_dtype):
        for b in range(0, len(dialogues), batch_size):
            dlg, ref = list(dialogues[b:b + batch_size]), list(summaries[b:b + batch_size])
            lat, lat_mask = model.encode(*model.encoder.tokenize(dlg, max_seq_len, device))
            tgt, tgt_mask = model.encode(*model.encoder.tokenize(ref, max_target_len, device))
            pred_all = model.predict(lat, lat_mask)                                   # (B, K, D)
            pred, keep = model.predict_until_stop(lat, lat_mask)                      # cut at the stop latent
            latents_acc.update(pred_all, tgt, tgt_mask, keep if model.middle.stop_latent is not None else None)
            ids, mask = model.decoder.target_ids(ref, max_target_len, device)
            prefix = model.prefix(pred, keep)
            _prefix_losses(model, prefix, ids, mask, use["pipeline"])
            outputs.latent += model.decoder.decode(model.decoder.generate(prefix, sampling))
            gold_prefix = model.prefix(tgt, tgt_mask)
            _prefix_losses(model, gold_prefix, ids, mask, use["gold"])
            if reconstruction:
                outputs.reconstruction += model.decoder.decode(model.decoder.generate(gold_prefix, sampling))
    rouge = {"latent": rouge_scores(outputs.latent, summaries).as_dict()}
    if reconstruction:
        rouge["reconstruction"] = rouge_scores(outputs.reconstruction, summaries).as_dict()
    return {"outputs": outputs, "rouge": rouge, "latent_metrics": latents_acc.result().as_dict(),
            "prefix_use": {k: v.as_dict() for k, v in use.items()}, "seconds": time.perf_counter() - start}
