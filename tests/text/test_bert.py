"""BERT features with a tiny random BertModel + tokenizer saved locally."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mockvox.text.bert import Bert, bert_feature, load_bert, phones_and_bert  # noqa: E402

CHARS = "我们今天去学校你好爱和.,!?"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Bert:
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARS, *"pythonabcdefgijklmqrsuvwxz"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32
    )
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return load_bert(folder)


def test_features_repeat_each_character_by_word2ph(tiny_bert):
    feats = bert_feature(tiny_bert, "你好.", [2, 2, 1])
    assert feats.shape == (16, 5)  # [hidden, n_phones]
    assert torch.equal(feats[:, 0], feats[:, 1]) and torch.equal(feats[:, 2], feats[:, 3])
    inputs = tiny_bert.tokenizer("你好.", return_tensors="pt")
    hidden = tiny_bert.model(**inputs, output_hidden_states=True).hidden_states[-3][0]
    assert torch.allclose(feats[:, 4], hidden[3])  # third-from-last layer, [CLS] dropped


def test_mixed_text_gets_zeros_outside_mandarin(tiny_bert):
    ids, feats, norm = phones_and_bert("我爱Python和你", "zh", tiny_bert)
    assert feats.shape == (16, len(ids))
    assert norm == "我爱Python和你"
    en = slice(4, 9)  # 我爱 -> 4 phones, then 5 English phones
    assert torch.count_nonzero(feats[:, en]) == 0 and torch.count_nonzero(feats[:, :4]) > 0


def test_word2ph_mismatch_is_an_error(tiny_bert):
    with pytest.raises(ValueError, match="word2ph"):
        bert_feature(tiny_bert, "你好", [2])


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="chinese-roberta"):
        load_bert(tmp_path / "absent-model-folder", local_files_only=True)


def test_one_batch_for_many_fragments_gives_each_fragment_its_own_features(tiny_bert):
    from mockvox.text.bert import phones_and_bert_many

    texts = ["我们今天去学校.", "你好!", "我爱Python和你", "学校"]
    batched = phones_and_bert_many(texts, "zh", tiny_bert)
    for text, (ids, feats, norm) in zip(texts, batched, strict=True):
        one_ids, one_feats, one_norm = phones_and_bert(text, "zh", tiny_bert)
        assert ids == one_ids and norm == one_norm and feats.shape == one_feats.shape
        assert torch.allclose(feats, one_feats, atol=1e-5)  # padding changes nothing beyond float error
    calls = []
    hook = tiny_bert.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        phones_and_bert_many(texts, "zh", tiny_bert)
    finally:
        hook.remove()
    assert len(calls) == 1
