"""LoRA-Ensemble (``methods.lora_ensemble``): the fused network equals its peft-trained members run
alone, the members' adapters differ, the shared backbone stays as it was, and M = 1 is one LoRA
model; its stated cost is one backbone's parameters plus the adapters, run M times."""

from __future__ import annotations

import pytest
import torch

from uqbench import methods
from uqbench.methods import flops
from uqbench.methods.adapters import from_hf_bert
from uqbench.methods.lora_ensemble import fuse, peft_member
from uqbench.methods.transformer import StreamTransformer, vit_config
from tests.toys import tiny_bert, tiny_text_task


def _perturbed(member: StreamTransformer, seed: int) -> StreamTransformer:
    """A member as after training: non-zero B (peft starts it at zero) and a moved head."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in member.named_parameters():
            if "lora_B" in name or name.startswith("head."):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return member.eval()


def _vit_and_batch():
    torch.manual_seed(0)
    return StreamTransformer(vit_config(img_size=16, patch=4, dim=24, depth=2, heads=6, num_classes=5)).eval(), \
        torch.randn(4, 3, 16, 16)


def _bert_and_batch():
    ids = torch.randint(0, 64, (4, 9))
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 6:] = 0
    return from_hf_bert(tiny_bert(), 3).eval(), {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("build", [_vit_and_batch, _bert_and_batch], ids=["vit", "bert"])
@pytest.mark.parametrize("members", [1, 3])
def test_fused_network_equals_each_member_run_alone(build, members):
    backbone, x = build()
    trained = [_perturbed(peft_member(backbone, 4, 8.0, seed=s), s) for s in range(members)]
    fused = fuse(backbone, trained, rank=4)
    with torch.no_grad():
        out = fused(x)
        alone = torch.cat([m(x) for m in trained])
    assert out.shape == alone.shape and out.shape[:2] == (members, 4)
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)


def test_an_untrained_member_is_the_backbone_with_its_own_head():
    """peft starts B at zero: before training, every stream is the backbone (with the member's head)."""
    backbone, x = _vit_and_batch()
    members = [peft_member(backbone, 2, 2.0, seed=s).eval() for s in range(2)]
    with torch.no_grad():
        fused = fuse(backbone, members, rank=2)(x)
        for m, member in enumerate(members):
            plain = StreamTransformer(backbone.config).eval()
            plain.load_state_dict(backbone.state_dict())
            plain.head.weight.copy_(member.head.weight)
            plain.head.bias.copy_(member.head.bias)
            torch.testing.assert_close(fused[m], plain(x)[0], rtol=1e-5, atol=1e-5)
    assert not torch.equal(fused[0], fused[1])  # heads drawn under different seeds


def test_only_adapters_and_head_train():
    backbone, _ = _vit_and_batch()
    member = peft_member(backbone, 2, 2.0, seed=0)
    trainable = {n for n, p in member.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any(".qkv.q.lora_A" in n for n in trainable) and any(".proj.lora_B" in n for n in trainable)
    assert not any("embed.proj" in n for n in trainable)  # the patch embedding is not a target


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UQBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        task = tiny_text_task()
        method = methods.create("lora_ensemble", rank=2).fit(task)
    return method, task


def test_fit_gives_members_with_different_adapters_on_an_unchanged_backbone(fitted):
    method, task = fitted
    net = method.models_[0]
    backbone = task.backbone(task.seed)
    shared = {k: v for k, v in backbone.state_dict().items() if not k.startswith("head.")}
    for k, v in shared.items():
        torch.testing.assert_close(net.state_dict()[k], v, rtol=0, atol=0, msg=k)  # frozen: exactly as loaded
    for blk in net.blocks:
        for layer in (blk.qkv, blk.proj):
            assert layer.lora_b.abs().sum() > 0  # trained
            for a, b in ((0, 1), (0, 2), (1, 2)):
                assert not torch.allclose(layer.lora_a[a], layer.lora_a[b])
                assert not torch.allclose(layer.lora_b[a], layer.lora_b[b])
    assert method.extra_["backbone"] == "pretrained" and len(set(method.extra_["member_seeds"])) == 3
    x, _ = next(task.iterate(task.splits["test"], 8))
    z = method.forward_members(x)
    assert z.shape == (3, 8, task.num_classes) and not torch.allclose(z[0], z[1])


def test_stated_cost_is_one_backbone_plus_adapters_run_m_times(fitted):
    method, task = fitted
    cfg = task.backbone_config
    (net_cfg, runs), = method.inference_networks(cfg)
    D, L = cfg["dim"], len(cfg["blocks"])
    Hd = cfg["head_dim"] * max(cfg["blocks"][0]["heads"])
    adapters = 3 * L * 2 * (3 * D + 3 * Hd + Hd + D)  # M x blocks x rank x (Q/K/V + O: A and B)
    heads = 2 * (D * task.num_classes + task.num_classes)  # M - 1 more heads
    assert runs == 1 and flops.parameter_count(net_cfg) == flops.parameter_count(cfg) + adapters + heads
    assert method.extra_["adapter_params"] == adapters
    x = {"input_ids": torch.zeros(1, 10, dtype=torch.long)}
    one, fused = flops.forward_flops(cfg, 10), flops.forward_flops(net_cfg, 10)
    assert fused["total"] - fused["adapters"] == pytest.approx(3 * one["total"])
    assert 0 < fused["adapters"] < 0.1 * fused["total"] and flops.tokens(net_cfg, x) == 10


def test_one_member_is_one_lora_model(tmp_path, monkeypatch):
    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path))
    task = tiny_text_task()
    one = methods.create("lora_ensemble", num_members=1, rank=2).fit(task)
    three = methods.create("lora_ensemble", num_members=3, rank=2).fit(task)
    x, _ = next(task.iterate(task.splits["test"], 8))
    with torch.no_grad():
        torch.testing.assert_close(one.forward_members(x), three.forward_members(x)[:1], rtol=1e-5, atol=1e-5)
    assert one.num_members == 1 and one.models_[0].blocks[0].qkv.lora_a.shape[0] == 1


@pytest.mark.parametrize("params, needle", [({"rank": 0}, "rank"), ({"num_members": 1.5}, "num_members"),
                                            ({"lr_scale": 0}, "lr_scale"), ({"alpha": -1.0}, "alpha"),
                                            ({"epochs_frac": True}, "epochs_frac")])
def test_bad_hyper_parameters_fail_in_one_line(params, needle):
    with pytest.raises(methods.ConfigError, match=needle):
        methods.create("lora_ensemble", **params)
