"""Which config values make saved weights compatible, and the error that names the ones that differ."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from latentbridge.files import json_digest, same_content

# Config fields that change tensor shapes or what the weights mean, plus the unfrozen layer counts
# (they decide which backbone layers are in the saved trainable state). A checkpoint written under
# different values of these cannot be resumed or loaded (see `config_fingerprint`).
ARCHITECTURE_FIELDS = (
    "latent_dim", "latent_seq_len", "prefix_len", "modernbert_hidden_dim", "gpt2_hidden_dim",
    "middle_hidden_dim", "middle_transformer_layers", "middle_num_heads", "middle_ffn_multiplier",
    "middle_use_rope", "adapter_num_heads", "adapter_use_rope", "use_prefix_rope", "rope_base",
    "use_rmsnorm", "modernbert_model", "gpt2_model", "use_stop_latent", "stop_latent_init",
    "stop_latent_seed", "normalize_latent", "num_encoder_unfrozen_layers", "decoder_unfrozen_layers",
)


@dataclass(frozen=True)
class ConfigFingerprint:
    """sha256 over the values that make weights compatible; `fields` lets errors name the difference."""

    digest: str
    fields: Mapping[str, Any]


def config_fingerprint(config_values: Mapping[str, Any], keys: Iterable[str] = ARCHITECTURE_FIELDS) -> ConfigFingerprint:
    """Fingerprint of `config_values` restricted to `keys` (missing keys are skipped)."""
    fields = {k: config_values[k] for k in keys if k in config_values}
    return ConfigFingerprint(json_digest(fields)[:16], fields)


def fingerprint_mismatch(path: Path, found: Mapping[str, Any], expected: ConfigFingerprint | str | None) -> str | None:
    """Why the weights at `path` (whose manifest/header is `found`) do not fit `expected`; None when they do."""
    if expected is None:
        return None
    want = expected if isinstance(expected, str) else expected.digest
    if found.get("fingerprint") == want:
        return None
    diffs = []
    if isinstance(expected, ConfigFingerprint):
        theirs = found.get("fingerprint_fields") or {}
        changed = [k for k in sorted(set(theirs) | set(expected.fields)) if theirs.get(k) != expected.fields.get(k)]
        # a checkpoint from before issue 10 records backbone digests under blake2b: the same files still match
        diffs = [f"{k}: checkpoint {theirs.get(k)!r}, now {expected.fields.get(k)!r}"
                 for k in changed if not same_content(theirs.get(k), expected.fields.get(k))]
        if changed and not diffs:
            return None
    detail = ("; ".join(diffs)) if diffs else f"fingerprint {found.get('fingerprint')} != {want}"
    return (
        f"checkpoint {path} was written with an incompatible model configuration ({detail}). "
        "Use the settings it was trained with, or point --checkpoint-dir at a fresh folder."
    )
