import hashlib

from latentbridge.assets import ensure_tiny_assets
from latentbridge.models.tiny import decoder_tokenizer, encoder_tokenizer

LM_STEPS = 10  # a short decoder warm-up: exercises the path, keeps the test fast
TEXTS = ["Anna: lunch at one? Ben: sure.", "The town of Arden lies in the northern valley."] * 20


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_tokenizer_training_is_deterministic():
    assert encoder_tokenizer(TEXTS, 300).backend_tokenizer.to_str() == \
        encoder_tokenizer(TEXTS, 300).backend_tokenizer.to_str()


def test_tokenizers_carry_the_special_tokens():
    enc, dec = encoder_tokenizer(TEXTS, 300), decoder_tokenizer(TEXTS, 300)
    ids = enc("Anna")["input_ids"]
    assert ids[0] == enc.cls_token_id and ids[-1] == enc.sep_token_id
    assert (dec.pad_token_id, dec.eos_token_id, dec.bos_token_id) == (0, 1, 2)
    assert dec("Anna")["input_ids"][0] == dec.bos_token_id
    assert dec.decode(dec("Anna", add_special_tokens=False)["input_ids"]) == "Anna"


def test_assets_are_deterministic_and_idempotent(tmp_path):
    one = ensure_tiny_assets(tmp_path / "one", seed=0, lm_steps=LM_STEPS)
    two = ensure_tiny_assets(tmp_path / "two", seed=0, lm_steps=LM_STEPS)
    for a, b in [(one.encoder_dir, two.encoder_dir), (one.decoder_dir, two.decoder_dir), (one.data_dir, two.data_dir)]:
        assert _digest(a) == _digest(b)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    ensure_tiny_assets(tmp_path / "two", seed=0, lm_steps=LM_STEPS)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    assert not [p for p in tmp_path.rglob("*tmp-*")]


def test_another_seed_or_warm_up_rebuilds(tmp_path):
    a = ensure_tiny_assets(tmp_path, seed=0, lm_steps=0)
    first = _digest(a.decoder_dir)
    ensure_tiny_assets(tmp_path, seed=1, lm_steps=0)
    second = _digest(a.decoder_dir)
    ensure_tiny_assets(tmp_path, seed=1, lm_steps=1)
    assert len({first, second, _digest(a.decoder_dir)}) == 3


def test_warm_up_teaches_the_decoder_the_corpus_language(tiny_assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from latentbridge.data.corpus import corpus_texts
    from latentbridge.models.tiny import gemma3_config, pretrain_lm

    tok = AutoTokenizer.from_pretrained(tiny_assets.decoder_dir)
    model = AutoModelForCausalLM.from_config(gemma3_config(len(tok)))
    texts = corpus_texts(0)
    first = pretrain_lm(model, tok, texts, steps=1, seed=0)
    assert pretrain_lm(model, tok, texts, steps=20, seed=0) < first - 1.0


def test_tiny_models_load_through_the_auto_classes(tiny_assets):
    from transformers import AutoModel, AutoModelForCausalLM

    assert type(AutoModel.from_pretrained(tiny_assets.encoder_dir)).__name__ == "ModernBertModel"
    assert type(AutoModelForCausalLM.from_pretrained(tiny_assets.decoder_dir)).__name__ == "Gemma3ForCausalLM"


OTHER = ["def area(r): return the area of a circle of radius r.", "Compute the mean of an array."] * 20


def test_another_corpus_gets_its_own_models_and_the_same_corpus_reuses_them(tmp_path):
    from latentbridge.assets import ModelSizes, ensure_corpus_assets

    sizes = ModelSizes(vocab_size=300, encoder_hidden=32, decoder_hidden=32, lm_steps=2)
    first = ensure_corpus_assets(tmp_path, TEXTS, sizes)
    assert first.root.parent == tmp_path / "corpora" and (first.root / "corpus.json").exists()
    before = {p: p.stat().st_mtime_ns for p in first.root.rglob("*")}
    again = ensure_corpus_assets(tmp_path, list(TEXTS), sizes)
    assert again == first and {p: p.stat().st_mtime_ns for p in first.root.rglob("*")} == before
    other = ensure_corpus_assets(tmp_path, OTHER, sizes)
    assert other.root != first.root and _digest(other.decoder_dir) != _digest(first.decoder_dir)
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(other.encoder_dir).get_vocab()
    assert any("circle" in token for token in vocab) and not any("Arden" in token for token in vocab)
    assert ensure_corpus_assets(tmp_path, TEXTS, ModelSizes(300, 32, 32, 3)).root not in (first.root, other.root)
