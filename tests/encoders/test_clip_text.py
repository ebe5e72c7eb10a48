"""c2kd.encoders.text.sentence_transformers: a sentence-transformers folder read as mean pooling then its Dense layer, against
transformers (and sentence-transformers when installed) computing the same."""

import pytest
import torch
from clipkit import PROJECTION, make_tiny_st_model


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_sentence_transformers_layout_equals_mean_pool_then_dense(tmp_path, weights):
    from transformers import AutoModel, AutoTokenizer

    from c2kd.encoders.text.loading import build_text_backbone, rebuild_text_backbone
    from c2kd.encoders.text.sentence_transformers import SentenceTransformerTextBackbone

    texts = ["ein mann spricht", "a man talks to a dog", "spricht"]
    folder, w = make_tiny_st_model(tmp_path / "st", [*texts, "der hund"], weights=weights)
    backbone = build_text_backbone(f"st:{folder}")
    assert isinstance(backbone, SentenceTransformerTextBackbone) and backbone.dim == PROJECTION
    tokenizer, bert = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        expected = ((hidden * mask).sum(1) / mask.sum(1)) @ w.T
        got = backbone(backbone.prepare(texts, 40))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    try:  # the sentence-transformers package itself, when installed, agrees
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True)
        torch.testing.assert_close(got, reference.float(), atol=1e-5, rtol=1e-5)
    except ImportError:
        pass
    # architecture saved and rebuilt offline (weights come from the checkpoint)
    backbone.save_architecture(tmp_path / "arch")
    rebuilt = rebuild_text_backbone(f"st:{folder}", tmp_path / "arch")
    rebuilt.load_state_dict(backbone.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(rebuilt.prepare(texts, 40)), expected, atol=1e-5, rtol=1e-5)
