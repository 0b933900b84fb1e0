"""The ONNX export path of ``make model``: a small random encoder of the reader's architecture goes through
``training.export.to_onnx`` and the fused fp32 graph must give the torch outputs (and hold one fused Attention op
per layer, which is what makes it faster)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from training import export
from training.model import Reader, ReaderHeads


def test_fused_export_matches_torch_and_fuses_attention(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=128, attn_implementation="eager")
    model = Reader(BertModel(cfg, add_pooling_layer=False), ReaderHeads(64)).eval()
    export.to_onnx(model, tmp_path, num_heads=4, hidden=64)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("Attention") == 2 and not (tmp_path / "raw.onnx").exists()
    assert (tmp_path / "model_int8.onnx").exists()
    ids = torch.randint(5, 300, (3, 20))
    ids[:, 0] = 0
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    with torch.inference_mode():
        want = [t.numpy() for t in model(ids, mask)]
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    keep = mask.numpy().astype(bool)
    for i in (0, 1):  # start / end logits at the real (unpadded) tokens
        np.testing.assert_allclose(got[i][keep], want[i][keep], atol=1e-4)
    np.testing.assert_allclose(got[2], want[2], atol=1e-4)
    assert not np.allclose(got[2][0], got[2][1])  # the check can fail: rows differ


@pytest.mark.parametrize("attn", [None, "eager"])
def test_base_encoder_attention_choice(attn, tmp_path):
    from transformers import BertConfig, BertModel

    from training.model import base_encoder

    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    enc = base_encoder(str(tmp_path), attn)
    assert (enc.config._attn_implementation == "eager") == (attn == "eager")
