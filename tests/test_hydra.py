"""Hydra Ensembles (methods/hydra): pruning, scoring, fusing, and the fitted method."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from uqbench.methods import adapters, create, load
from uqbench.methods.hydra import circuit_select, fuse, prune, select_heads, taylor_scores
from uqbench.methods.hydra.fuse import fold_pre_norms
from uqbench.methods.hydra.importance import circuit_objective
from uqbench.methods.hydra.method import Hydra
from uqbench.methods.transformer import StreamTransformer

DIM, HEADS, DEPTH, CLASSES = 24, 6, 3, 5


@torch.no_grad()
def _jitter(model: StreamTransformer, seed: int, scale: float = 0.1, skip: tuple[str, ...] = ()) -> StreamTransformer:
    """Add seeded noise to every parameter (outside ``skip`` prefixes) so outputs are O(1)
    and no weight is accidentally symmetric; zero-padded weights stay irrelevant."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if not name.startswith(skip):
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


def tiny_vit():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                            num_classes=CLASSES).eval()
    return _jitter(adapters.from_timm_vit(vit), 1), torch.randn(3, 3, 16, 16)


def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(2)
    bert = BertModel(BertConfig(vocab_size=50, hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                                intermediate_size=2 * DIM, max_position_embeddings=16)).eval()
    ids = torch.randint(0, 50, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0  # padding
    mask[2, 3:] = 0
    return _jitter(adapters.from_hf_bert(bert, CLASSES), 2), {"input_ids": ids, "attention_mask": mask}


def tiny_clip():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(3)
    clip = CLIP(16, CLIPVisionCfg(layers=DEPTH, width=DIM, head_width=DIM // HEADS, image_size=16, patch_size=4),
                CLIPTextCfg(context_length=8, vocab_size=50, width=16, heads=2, layers=1)).eval()
    classes = F.normalize(torch.randn(CLASSES, 16), dim=-1)
    model = adapters.from_open_clip_visual(clip.visual, classes, clip.logit_scale.detach())
    return _jitter(model, 3, scale=0.05), torch.randn(3, 3, 16, 16)


BACKBONES = {"vit": tiny_vit, "bert": tiny_bert, "clip": tiny_clip}

# head sets of 3 members for the blocks from fork_layer on
EQUAL = [[[0, 1], [2, 3], [4, 5]], [[1, 4], [0, 5], [2, 3]], [[0, 2], [1, 5], [3, 4]]]
UNEQUAL = [[[0, 3, 5], [1, 4], [2, 3]], [[2], [0, 1, 2, 3, 4, 5], [5]], [[1, 4], [3, 5], [0, 1, 2, 4]]]


def _members(base: StreamTransformer, sets: list, fork: int) -> list[StreamTransformer]:
    """Pruned members, each then perturbed differently outside the shared trunk."""
    trunk = ("embed.",) + tuple(f"blocks.{i}." for i in range(fork))
    return [_jitter(prune(base, s[fork:], fork), 10 + m, 0.05, skip=trunk) for m, s in enumerate(sets)]


@torch.no_grad()
def _merged_mlp_members(members: list[StreamTransformer], fork: int) -> list[StreamTransformer]:
    out = [copy.deepcopy(m) for m in members]
    for layer in range(fork, DEPTH):
        for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
            mod, leaf = name.split(".")
            mean = torch.stack([getattr(getattr(m.blocks[layer], mod), leaf) for m in members]).mean(0)
            for m in out:
                getattr(getattr(m.blocks[layer], mod), leaf).copy_(mean)
    return out


@pytest.mark.parametrize("arch", list(BACKBONES))
@pytest.mark.parametrize("sets", [EQUAL, UNEQUAL], ids=["equal", "unequal"])
@pytest.mark.parametrize("fork", [0, 1])
@torch.no_grad()
def test_fused_equals_members_run_one_by_one(arch, sets, fork):
    base, x = BACKBONES[arch]()
    members = _members(base, sets, fork)
    for merge in (True, False):
        fused = fuse(members, fork, merge_mlp=merge).eval()
        refs = _merged_mlp_members(members, fork) if merge else members
        expected = torch.cat([m.eval()(x) for m in refs])  # (M, B, C)
        got = fused(x)
        assert got.shape == (3, 3, CLASSES) and expected.abs().max() > 0.1
        assert (got - expected).abs().max() <= 1e-5, (merge, (got - expected).abs().max())
        # grouped, not dense block-diagonal; trunk shared; MLP merged or per member
        kmax = max(len(s[fork]) for s in sets)
        blk = fused.blocks[fork]
        assert tuple(blk.qkv.weight.shape) == (3, 3 * kmax * DIM // HEADS, DIM)
        assert blk.fc1.weight.shape[0] == (1 if merge else 3) and blk.norm1.weight.shape[0] == 3
        assert all(b.members == 1 for b in fused.blocks[:fork])
    # the per-member differences do reach the output: members disagree
    assert (expected[0] - expected[1]).abs().max() > 1e-3


@pytest.mark.parametrize("arch", list(BACKBONES))
@pytest.mark.parametrize("fork", [0, 1])
@torch.no_grad()
def test_folding_pre_norms_into_qkv_keeps_the_outputs(arch, fork):
    base, x = BACKBONES[arch]()
    fused = fuse(_members(base, UNEQUAL, fork), fork).eval()
    before = fused(x)
    folded = fold_pre_norms(copy.deepcopy(fused))
    assert (folded(x) - before).abs().max() <= 1e-5
    pre_norm = base.config.get("pre_norm", True)
    assert [b.norm1.weight.shape[0] for b in folded.blocks[fork:]] == [1 if pre_norm else 3] * (DEPTH - fork)
    rebuilt = StreamTransformer(folded.config).eval()  # the config describes the folded network
    rebuilt.load_state_dict(folded.state_dict())
    assert torch.equal(rebuilt(x), folded(x))
    assert fold_pre_norms(copy.deepcopy(folded)).state_dict().keys() == folded.state_dict().keys()


@pytest.mark.parametrize("arch", list(BACKBONES))
@torch.no_grad()
def test_pruning_a_head_equals_masking_it(arch):
    base, x = BACKBONES[arch]()
    sets = [[0, 2, 3, 4, 5], [1, 3], [0, 1, 2, 3, 4, 5]]
    masked = copy.deepcopy(base)
    for blk, keep in zip(masked.blocks, sets):
        blk.head_gate = torch.zeros(1, HEADS)
        blk.head_gate[0, keep] = 1.0
    pruned = prune(base, sets, 0)
    assert pruned.blocks[1].qkv.weight.shape[1] == 3 * 2 * DIM // HEADS
    assert (pruned(x) - masked(x)).abs().max() <= 1e-5
    assert (pruned(x) - base(x)).abs().max() > 1e-4  # the pruning did change the function


@pytest.mark.parametrize("arch", list(BACKBONES))
@torch.no_grad()
def test_one_member_keeping_every_head_is_the_model(arch):
    base, x = BACKBONES[arch]()
    fused = fuse([prune(base, [list(range(HEADS))] * DEPTH, 0)], 0, merge_mlp=True)
    assert (fused(x) - base(x)).abs().max() <= 1e-6


def _planted(layer: int, head: int):
    model, x = tiny_vit()
    dh = DIM // HEADS
    blk = model.blocks[layer]
    with torch.no_grad():
        v = slice(2 * HEADS * dh + head * dh, 2 * HEADS * dh + (head + 1) * dh)
        blk.qkv.weight[0, v] = 0
        blk.qkv.bias[0, v] = 0
        blk.proj.weight[0, :, head * dh : (head + 1) * dh] = 0
    y = torch.tensor([0, 3, 4])
    return model, [(x, y), (x.flip(0), y)]


def test_taylor_ranks_a_useless_head_last():
    model, batches = _planted(layer=1, head=2)
    scores = taylor_scores(model, batches)
    assert [len(s) for s in scores] == [HEADS] * DEPTH
    assert scores[1][2] == 0 and int(scores[1].argmin()) == 2
    assert (scores[1][[0, 1, 3, 4, 5]] > 0).all() and (scores[0] > 0).all()
    assert select_heads(scores[1], HEADS - 1) == [0, 1, 3, 4, 5]
    # the model is left as it was
    assert all(b.head_gate is None for b in model.blocks)
    assert all(p.requires_grad for p in model.parameters())


def test_taylor_score_is_the_per_example_gate_gradient():
    model, batches = _planted(layer=1, head=2)
    x, y = batches[0]
    expected = torch.zeros(DEPTH, HEADS)
    for i in range(len(y)):  # |dL(x_i)/d xi_h| one example at a time, averaged
        gates = [torch.ones(1, HEADS, requires_grad=True) for _ in range(DEPTH)]
        for blk, g in zip(model.blocks, gates):
            blk.head_gate = g
        loss = F.cross_entropy(model(x[i : i + 1])[0], y[i : i + 1])
        expected += torch.stack([g[0] for g in torch.autograd.grad(loss, gates)]).abs() / len(y)
    for blk in model.blocks:
        blk.head_gate = None
    got = torch.stack(taylor_scores(model, [(x, y)]))
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)


def test_circuit_scores_are_conditioned_on_earlier_layers():
    model, batches = _planted(layer=1, head=2)
    sets, scores = circuit_select(model, batches, [], k=2, fork_layer=1)
    assert len(sets) == DEPTH - 1 and all(len(s) == 2 for s in sets)
    assert abs(float(scores[0][2])) < 1e-6  # masking a dead head changes nothing
    assert 2 not in sets[0]
    assert all(b.head_gate is None for b in model.blocks)
    # layer 2 is scored with layer 1 already reduced to its kept heads
    model.blocks[1].head_gate = torch.zeros(1, HEADS)
    model.blocks[1].head_gate[0, sets[0]] = 1.0
    ref = circuit_objective(model, batches, [], 1.0)
    for h in range(HEADS):
        model.blocks[2].head_gate = torch.ones(1, HEADS)
        model.blocks[2].head_gate[0, h] = 0.0
        assert abs(circuit_objective(model, batches, [], 1.0) - ref - float(scores[1][h])) < 1e-5


@torch.no_grad()
def test_circuit_objective_adds_the_ood_entropy_term():
    model, batches = _planted(layer=1, head=2)
    x_ood = torch.randn(4, 3, 16, 16)
    ce = sum(F.cross_entropy(model(x)[0], y, reduction="sum") for x, y in batches) / 6
    p = model(x_ood)[0].softmax(-1)
    ent = -(p * p.log()).sum(-1).mean() / torch.log(torch.tensor(float(CLASSES)))
    J = circuit_objective(model, batches, [(x_ood, torch.full((4,), -1))], 0.5)
    assert abs(J - float(ce + 0.5 * (1 - ent))) < 1e-5
    assert abs(circuit_objective(model, batches, [], 0.5) - float(ce)) < 1e-5


def test_member_seeds_give_different_head_sets():
    scores = torch.tensor([3.0, 2.9, 2.8, 0.1, 0.2, 2.7])
    assert select_heads(scores, 2) == [0, 1]
    fixed = {tuple(select_heads(scores, 2, 0.0, torch.Generator().manual_seed(s))) for s in range(8)}
    assert fixed == {(0, 1)}
    drawn = {tuple(select_heads(scores, 2, 0.5, torch.Generator().manual_seed(s))) for s in range(8)}
    assert len(drawn) > 1
    assert all(3 not in d and 4 not in d for d in drawn)  # the clearly useless heads stay out


# -- the fitted method --------------------------------------------------------------------


class _ModelTask:
    """The least of a Task around a given model, for fit-time checks that need no data."""

    seed, trainable, epochs, device, num_classes, name = 0, False, 1.0, torch.device("cpu"), CLASSES, "m"

    def __init__(self, model):
        self.model = model

    def single_model(self, seed):
        return self.model


def test_validate_and_fit_time_checks():
    for bad in (dict(num_members=0), dict(criterion="l1"), dict(fork_layer=-1), dict(heads_per_member=0),
                dict(gumbel_tau=-1.0), dict(finetune="both")):
        with pytest.raises(ValueError):
            create("hydra", **bad)
    model, _ = tiny_vit()
    with pytest.raises(ValueError, match="heads_per_member=7 exceeds the 6 heads of each layer"):
        Hydra(heads_per_member=7).fit(_ModelTask(model))
    with pytest.raises(ValueError, match="fork_layer=3"):
        Hydra(fork_layer=3).fit(_ModelTask(model))


def _x(task):
    return next(iter(task.batches("val", 0)))[0]


@pytest.mark.parametrize("criterion,finetune,fork", [("taylor", "members", 1), ("circuit", "fused", 0)])
def test_fit_on_digits_and_save_load(digits_task, tmp_path, criterion, finetune, fork):
    task = digits_task
    task.splits["ood_val"] = task.ood["digits6-9"]  # exercise the circuit's OOD term
    method = create("hydra", criterion=criterion, finetune=finetune, fork_layer=fork, score_batches=2)
    method.fit(task)
    x = _x(task)
    out = method.eval().forward_members(x)
    assert out.shape == (3, len(next(iter(task.batches("val", 0)))[1]), task.num_classes)
    assert torch.isfinite(out).all()
    e = method.extra_
    assert e["layers"] == list(range(fork, 2)) and len(e["jaccard_per_layer"]) == 2 - fork
    assert all(len(s) == 2 for member in e["head_sets"] for s in member)  # H // M = 6 // 3
    assert len({str(s) for s in e["head_sets"]}) > 1  # members differ
    assert e["finetuned"] == finetune
    # the shared trunk stayed exactly the single model's
    single = task.single_model(task.seed)
    fused = method.models_[0]
    assert torch.equal(fused.embed.proj.weight, single.embed.proj.weight)
    for i in range(fork):
        assert torch.equal(fused.blocks[i].qkv.weight, single.blocks[i].qkv.weight)

    method.save(tmp_path / "hydra")
    again = load(tmp_path / "hydra")
    assert again.extra_ == method.extra_ and again.get_params() == method.get_params()
    assert torch.equal(again.forward_members(x), out)


def test_one_member_with_every_head_is_the_single_model(digits_task):
    method = create("hydra", num_members=1, heads_per_member=6, fork_layer=0, finetune_frac=0.0).fit(digits_task)
    x = _x(digits_task)
    single = digits_task.single_model(digits_task.seed)
    with torch.no_grad():
        assert (method.forward_members(x) - single(x)).abs().max() <= 1e-5
    assert method.extra_["jaccard_per_layer"] == [1.0, 1.0]


def test_zero_shot_task_runs_without_training(digits_task, monkeypatch):
    digits_task.trainable = False

    def no_training(*a, **k):
        raise AssertionError("a zero-shot task must not be trained")

    monkeypatch.setattr(digits_task, "train", no_training)
    assert Hydra.needs_training is False
    method = create("hydra", criterion="circuit", score_batches=1).fit(digits_task)
    out = method.forward_members(_x(digits_task))
    assert out.shape[0] == 3 and torch.isfinite(out).all()
    assert method.extra_["finetuned"] is None


def test_the_code_defaults_are_the_best_recipe_across_the_study_tasks():
    """A user who declares `[methods.hydra]` gets the in-budget recipe the hydra-study ranked best
    across its tasks (``tune --across-tasks``), on each of those tasks' models."""
    import inspect
    import json
    from pathlib import Path

    from uqbench.bench import suite, tuning

    root = Path(__file__).resolve().parents[1] / "results"
    rec = json.loads(tuning.across_path(root, "hydra-study", "hydra").read_text())
    study = suite.load("hydra-study")
    space = next(sp for sp in study.tuning.spaces if sp.entry == "hydra")
    best, source = rec["best"]["knobs"], rec["best"]["from"]
    default = {k: p.default for k, p in inspect.signature(Hydra.__init__).parameters.items() if k != "self"}
    for task in rec["tasks"]:  # the best recipe carried to each task, as the ranking carried it
        own, here = space.knobs_for(source), space.knobs_for(task)
        params = tuning.resolve(space, {k: here[k][own[k].index(v)] for k, v in best.items()})
        depth = next(t for t in study.tasks if t.name == task).params.get("depth", 6)  # all-MiniLM-L6-v2: 6
        backbone = {"blocks": [{"heads": [here["heads_per_member"][-1]]}] * depth}  # the list ends at all H
        k, fork = Hydra()._check_against(backbone)
        assert (k, fork) == (params.pop("heads_per_member"), params.pop("fork_layer")), task
        assert {name: default[name] for name in params} == params, task
    searched = json.loads(tuning.record_path(root, "hydra-study", source, "hydra").read_text())
    winner = next(c for c in searched["candidates"] if c["name"] == searched["winner"]["name"])
    assert winner["knobs"] == best and winner["within_max_cost"]  # chosen within the paper's cost
