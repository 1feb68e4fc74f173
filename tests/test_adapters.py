"""The adapters compute their library model's function: timm ViT, Hugging Face BERT and an
open_clip image tower, each built with random weights offline, agree with the converted
``StreamTransformer`` to 1e-5 on the same inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uqbench.methods import adapters

TOL = 1e-5


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().max().item() <= TOL * max(1.0, b.abs().max().item())


@torch.no_grad()
def test_timm_vit_logits_match():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=4, num_classes=7).eval()
    x = torch.randn(5, 3, 32, 32)
    _close(adapters.from_timm_vit(vit).eval()(x), vit(x).unsqueeze(0))


@torch.no_grad()
def test_hf_bert_tokens_and_pooled_logits_match():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=100, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
                                intermediate_size=96, max_position_embeddings=32)).eval()
    ids = torch.randint(0, 100, (4, 12))
    mask = torch.ones(4, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[3, 2:] = 0
    model = adapters.from_hf_bert(bert, num_classes=5).eval()
    batch = {"input_ids": ids, "attention_mask": mask}
    ref = bert(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, N, D)
    h, _ = model.features(batch)
    keep = mask.bool()
    _close(h[0][keep], ref[keep])  # every real token; padding positions are never read
    w = mask[..., None].float()
    pooled = (ref * w).sum(1) / w.sum(1)  # all-MiniLM-L6-v2's mean pooling
    _close(model(batch), model.head(pooled.unsqueeze(0)))


@torch.no_grad()
def test_open_clip_image_tower_logits_match():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    clip = CLIP(embed_dim=24, vision_cfg=CLIPVisionCfg(layers=3, width=48, head_width=12, image_size=32, patch_size=8),
                text_cfg=CLIPTextCfg(context_length=8, vocab_size=50, width=16, heads=2, layers=1)).eval()
    classes = F.normalize(torch.randn(6, 24), dim=-1)
    model = adapters.from_open_clip_visual(clip.visual, classes, clip.logit_scale).eval()
    x = torch.randn(5, 3, 32, 32)
    ref = clip.logit_scale.exp() * F.normalize(clip.encode_image(x), dim=-1) @ classes.T
    _close(model(x), ref.unsqueeze(0))
