"""Ensemble baselines: Deep Ensembles, MC Dropout, BatchEnsemble, Packed-Ensembles.

Each property is checked against an independent construction (explicit member networks,
autograd, the single model) on a from-scratch ViT (``digits``) and on a BERT backbone
(``toys.tiny_text_task``).
"""

from __future__ import annotations

import pytest
import torch
from toys import tiny_text_task

import uqbench.bench.train
from uqbench import methods
from uqbench.methods.batch_ensemble import BatchEnsemble, to_batch_ensemble
from uqbench.methods.convert import packed_config
from uqbench.methods.deep_ensembles import DeepEnsembles
from uqbench.methods.layers import BatchLinear
from uqbench.methods.packed import NOTE, build_packed
from uqbench.methods.transformer import StreamTransformer, init_weights

TOL = 1e-5


@pytest.fixture
def text_task():
    return tiny_text_task()


@pytest.fixture(params=["digits", "text"])
def task(request):
    return request.getfixturevalue("digits_task" if request.param == "digits" else "text_task")


def _batch(task, n: int = 16):
    x, _ = next(iter(task.batches("val", seed=0)))
    return {k: v[:n] for k, v in x.items()} if isinstance(x, dict) else x[:n]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# -- Packed-Ensembles ------------------------------------------------------------------------
def _member_slice(name: str, t: torch.Tensor, n: int, members: int) -> torch.Tensor:
    """Member n's part of a packed parameter: embedding channels are split side by side
    (convolution outputs on dim 0, everything else on the last dim); later layers hold a
    leading member axis."""
    if name.startswith("embed."):
        dim = 0 if name.startswith("embed.proj.") else -1
        return t.chunk(members, dim=dim)[n]
    assert t.shape[0] == members, name
    return t[n]


def _leaks(model: StreamTransformer, x, members: int) -> tuple[list[str], list[str]]:
    """(params of member n != m with a nonzero gradient of member m's logits,
    params of member m whose own slice gets no gradient)."""
    names, params = zip(*model.named_parameters())
    out = model(x)  # (M, B, C)
    leaks, dead = [], []
    for m in range(members):
        grads = torch.autograd.grad(out[m].square().sum(), params, retain_graph=True, allow_unused=True)
        for name, p, g in zip(names, params, grads):
            g = torch.zeros_like(p) if g is None else g
            for n in range(members):
                part = _member_slice(name, g, n, members)
                if n != m and part.abs().max() > 0:
                    leaks.append(f"{name}: member {m} <- {n}")
                if n == m and part.abs().max() == 0:
                    dead.append(f"{name}: member {m}")
    return leaks, dead


def test_packed_members_exchange_nothing(task):
    M = 3
    torch.manual_seed(0)
    model = init_weights(build_packed(task.backbone(0).config, M, 2.0))
    x = _batch(task, 8)
    assert model(x).shape == (M, 8, task.num_classes)
    leaks, dead = _leaks(model, x, M)
    assert leaks == []
    assert dead == []  # the slicing really covers each member's parameters


def test_packed_leak_detector_sees_a_shared_embedding_norm(text_task):
    """Control: BERT's embedding LayerNorm over all M streams (no per-stream grouping) leaks."""
    M = 3
    torch.manual_seed(0)
    model = init_weights(StreamTransformer(packed_config(text_task.backbone(0).config, M, 2.0)))
    model.embed.streams = 1  # normalise across all streams together, as a plain LayerNorm would
    leaks, _ = _leaks(model, _batch(text_task, 8), M)
    assert leaks


def test_packed_width_keeps_head_dim(digits_task):
    cfg = digits_task.backbone(0).config  # dim 24, 6 heads of 4
    pc = packed_config(cfg, 3, 2.0)
    assert pc["head_dim"] == cfg["head_dim"]
    assert pc["dim"] == 16 and pc["blocks"][0]["heads"] == [4, 4, 4]
    assert pc["embed"]["dim"] == 48 and pc["embed_streams"] == 3
    assert pc["mlp_hidden"] == round(2.0 * cfg["mlp_hidden"] / 3)


# -- BatchEnsemble ---------------------------------------------------------------------------
def _explicit_member(be: StreamTransformer, base_cfg: dict, m: int) -> StreamTransformer:
    """Member m of a BatchEnsemble as a plain single model: W_m = W * (s_m r_m^T), bias b_m."""
    single = StreamTransformer(base_cfg)
    be_state = be.state_dict()
    state = {}
    for name, t in single.state_dict().items():
        mod_name, leaf = name.rsplit(".", 1)
        mod = be.get_submodule(mod_name)
        if isinstance(mod, BatchLinear):
            v = mod.weight * torch.outer(mod.s[m], mod.r[m]) if leaf == "weight" else mod.bias[m]
            state[name] = v.unsqueeze(0)
        else:
            v = be_state[name]
            state[name] = v if v.shape == t.shape else v[m : m + 1]
    single.load_state_dict(state)
    return single.eval()


@pytest.mark.parametrize("fast_init", ["random_sign", "gaussian"])
def test_batch_ensemble_equals_explicit_members(task, fast_init):
    M = 3
    backbone = task.backbone(0).eval()
    be = to_batch_ensemble(backbone, M, fast_init, 0.5, seed=1).eval()
    with torch.no_grad():
        for mod in be.modules():  # distinct member biases, so member indexing is exercised
            if isinstance(mod, BatchLinear):
                mod.bias.add_(0.05 * torch.randn_like(mod.bias))
    x = _batch(task)
    with torch.no_grad():
        out = be(x)
        assert out.shape == (M, 16, task.num_classes)
        for m in range(M):
            assert _max_diff(out[m], _explicit_member(be, backbone.config, m)(x)[0]) <= TOL
        assert _max_diff(out[0], out[1]) > 1e-3  # the members do differ


def test_batch_ensemble_degenerate_equals_single(task):
    backbone = task.backbone(0).eval()
    x = _batch(task)
    with torch.no_grad():
        ref = backbone(x)[0]
        one = to_batch_ensemble(backbone, 1, "random_sign", 0.5, seed=0).eval()
        assert _max_diff(one(x)[0], ref) <= TOL
        ones = to_batch_ensemble(backbone, 3, "ones", 0.5, seed=0).eval()
        out = ones(x)
        assert out.shape[0] == 3
        for m in range(3):
            assert _max_diff(out[m], ref) <= TOL
        # and a non-unit fast weight does move it (the check above can fail)
        gauss = to_batch_ensemble(backbone, 3, "gaussian", 0.5, seed=0).eval()
        assert _max_diff(gauss(x)[0], ref) > 1e-4


def test_packed_degenerate_equals_single(task):
    backbone = task.backbone(0).eval()
    packed = build_packed(backbone.config, 1, 1.0)
    packed.load_state_dict(backbone.state_dict())  # strict: identical shapes
    x = _batch(task)
    with torch.no_grad():
        assert _max_diff(packed.eval()(x)[0], backbone(x)[0]) <= TOL


# -- MC Dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dropout", "attn_dropout", "differ"), [(0.2, 0.2, True), (0.0, 0.0, False), (0.0, 0.3, True)]
)
def test_mc_dropout_passes(task, dropout, attn_dropout, differ):
    model = task.backbone(0, dropout=dropout, attn_dropout=attn_dropout).eval()
    x = _batch(task)
    with torch.no_grad():
        plain = [model(x), model(x)]
        model.set_mc_dropout(True)
        mc = [model(x), model(x)]
    assert torch.equal(plain[0], plain[1])  # eval without the flag is deterministic
    assert (not torch.equal(mc[0], mc[1])) == differ
    if not differ:
        assert torch.equal(mc[0], plain[0])


def test_mc_dropout_method_is_stochastic_after_load(digits_task, tmp_path):
    method = methods.create("mc_dropout", p=0.2, samples=4).fit(digits_task)
    method.save(tmp_path / "m")
    loaded = methods.load(tmp_path / "m")
    x = _batch(digits_task)
    with torch.no_grad():
        out = loaded.forward_members(x)
        assert out.shape == (4, 16, digits_task.num_classes)
        assert not torch.equal(out[0], out[1])


# -- Deep Ensembles --------------------------------------------------------------------------
def test_deep_ensembles_members_and_cache(digits_task, monkeypatch):
    calls = []
    real_fit = uqbench.bench.train.fit
    monkeypatch.setattr(uqbench.bench.train, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    de = DeepEnsembles(num_members=2).fit(digits_task)
    assert len(calls) == 2
    x = _batch(digits_task)
    with torch.no_grad():
        out = de.forward_members(x)
        assert out.shape == (2, 16, digits_task.num_classes)
        assert _max_diff(out[0], out[1]) > 1e-3
        single = digits_task.single_model(digits_task.seed)  # member 0 = the cached single model
        assert len(calls) == 2
        assert torch.equal(single(x)[0], out[0])
    DeepEnsembles(num_members=3).fit(digits_task)  # a resumed run trains only the new member
    assert len(calls) == 3


def test_deep_ensembles_with_a_tuned_learning_rate_train_their_own_members(digits_task, monkeypatch):
    rates = []
    real_fit = uqbench.bench.train.fit
    monkeypatch.setattr(uqbench.bench.train, "fit", lambda *a, **k: rates.append(a[5]) or real_fit(*a, **k))
    de = DeepEnsembles(num_members=2, lr_scale=0.5).fit(digits_task)
    assert rates == [0.5, 0.5]
    single = digits_task.single_model(digits_task.seed)
    assert rates == [0.5, 0.5, 1.0]  # member 0 is not the single model
    x = _batch(digits_task)
    with torch.no_grad():
        assert _max_diff(single(x)[0], de.forward_members(x)[0]) > 1e-4


# -- every method on both tasks --------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "params", "members"),
    [
        ("deep_ensembles", {}, 3),
        ("mc_dropout", {"samples": 3}, 3),
        ("batch_ensemble", {}, 3),
        ("packed_ensembles", {}, 3),
    ],
)
def test_fit_save_load(task, name, params, members, tmp_path):
    method = methods.create(name, **params).fit(task)
    x = _batch(task)
    torch.manual_seed(5)
    with torch.no_grad():
        out = method.forward_members(x)
    assert out.shape == (members, 16, task.num_classes)
    assert method.num_members == members
    assert torch.isfinite(out).all()
    method.save(tmp_path / name)
    loaded = methods.load(tmp_path / name)
    torch.manual_seed(5)
    with torch.no_grad():
        again = loaded.forward_members(x)
    assert torch.equal(out, again)
    if name == "packed_ensembles":
        assert loaded.extra_["note"] == NOTE
    if name == "batch_ensemble":  # auto init: random signs from scratch, mean-1 Gaussian when pretrained
        assert method.extra_["fast_init"] == ("gaussian" if task.name == "tiny_text" else "random_sign")


def test_batch_ensemble_keeps_pretrained_slow_weights(text_task):
    """With a pretrained backbone, BatchEnsemble's slow weights start as the backbone's."""
    backbone = text_task.backbone(0)
    be = to_batch_ensemble(backbone, 3, "gaussian", 0.1, seed=0)
    assert torch.equal(be.blocks[0].qkv.weight, backbone.blocks[0].qkv.weight[0])
    assert torch.equal(be.blocks[1].fc2.bias[2], backbone.blocks[1].fc2.bias[0])
    assert BatchEnsemble(fast_init="auto").get_params()["num_members"] == 3


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("packed_ensembles", {"gamma": 2}),
        ("packed_ensembles", {"alpha": 0}),
        ("mc_dropout", {"p": 1.0}),
        ("mc_dropout", {"p": -0.1}),
        ("mc_dropout", {"samples": 0}),
        ("batch_ensemble", {"fast_init": "zeros"}),
        ("batch_ensemble", {"num_members": 0}),
        ("deep_ensembles", {"num_members": 0}),
        ("deep_ensembles", {"lr_scale": 0}),
    ],
)
def test_invalid_params(name, params):
    with pytest.raises(ValueError):
        methods.create(name, **params)
