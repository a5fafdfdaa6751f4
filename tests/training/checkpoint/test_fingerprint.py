"""The config fingerprint: stable digests, and errors that name what differs (backbone digests of old checkpoints too)."""

from __future__ import annotations

from pathlib import Path

from latentbridge.files import hash_path
from latentbridge.training.checkpoint.fingerprint import ConfigFingerprint, config_fingerprint, fingerprint_mismatch

LEGACY_BACKBONE_DIGEST = "f83f62375060447000759d63457080a2"  # blake2b of golden/legacy_03780ed/backbone, by 03780ed


def test_digest_is_the_one_checkpoints_recorded_before_the_split():
    fields = {"latent_dim": 8, "prefix_len": 2, "modernbert_model_files": LEGACY_BACKBONE_DIGEST}
    assert config_fingerprint(fields, tuple(fields)).digest == "2091baccf8f504c5"  # from the legacy manifest


def test_only_the_listed_keys_count():
    a = config_fingerprint({"latent_dim": 8, "learning_rate": 1e-3}, ("latent_dim",))
    b = config_fingerprint({"latent_dim": 8, "learning_rate": 5e-4}, ("latent_dim",))
    assert a == b and a.fields == {"latent_dim": 8}


def test_mismatch_names_each_differing_field():
    found = config_fingerprint({"latent_dim": 8, "prefix_len": 2}, ("latent_dim", "prefix_len"))
    now = config_fingerprint({"latent_dim": 16, "prefix_len": 2}, ("latent_dim", "prefix_len"))
    manifest = {"fingerprint": found.digest, "fingerprint_fields": dict(found.fields)}
    assert "(latent_dim: checkpoint 8, now 16)" in fingerprint_mismatch(Path("x"), manifest, now)
    assert fingerprint_mismatch(Path("x"), manifest, found) is None
    assert fingerprint_mismatch(Path("x"), manifest, None) is None
    assert f"fingerprint {found.digest} != {now.digest}" in fingerprint_mismatch(Path("x"), manifest, now.digest)


def test_legacy_backbone_digest_matches_the_same_files(legacy_files):
    manifest = {"fingerprint": "2091baccf8f504c5",
                "fingerprint_fields": {"latent_dim": 8, "modernbert_model_files": LEGACY_BACKBONE_DIGEST}}
    now = {"latent_dim": 8, "modernbert_model_files": hash_path(legacy_files / "backbone")}
    assert now["modernbert_model_files"] != LEGACY_BACKBONE_DIGEST  # sha256 now
    assert fingerprint_mismatch(Path("x"), manifest, config_fingerprint(now, tuple(now))) is None
    plain = ConfigFingerprint("0" * 16, {**now, "modernbert_model_files": str(now["modernbert_model_files"])})
    assert "modernbert_model_files" in fingerprint_mismatch(Path("x"), manifest, plain)  # no files to hash: refused
