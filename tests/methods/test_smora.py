"""SMoRA: golden values, fast vs reference path, init, gating, load balancing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import samora
from samora.methods.smora import SMoRAConfig, SMoRALayer
from samora.routing import RoutingState
from tests.helpers import enable_checkpointing, tiny_model

D_IN, D_OUT = 12, 10


def layer(dtype=torch.float64, seed=0, **overrides) -> SMoRALayer:
    """A bare SMoRA layer on a random Linear, with every adapter tensor random (bias included)."""
    torch.manual_seed(seed)
    config = SMoRAConfig(**{"r": 8, "top_k": 3, "alpha": 6.0, "dropout": 0.0, **overrides})
    smora = SMoRALayer(nn.Linear(D_IN, D_OUT, dtype=dtype), config, RoutingState(), adapter_dtype=dtype)
    with torch.no_grad():
        for tensor in (smora.smora_A, smora.smora_B, smora.smora_router, smora.smora_bias):
            tensor.copy_(torch.randn_like(tensor))
    return smora


@pytest.mark.parametrize("gate_with_bias", [False, True])
@pytest.mark.parametrize("compute", ["dense", "sparse"])
def test_golden_against_float64_per_token_equation(compute, gate_with_bias):
    smora = layer(compute=compute, gate_with_bias=gate_with_bias)
    x = torch.randn(2, 5, D_IN, dtype=torch.float64)
    a, b, router, bias = (
        t.detach().numpy() for t in (smora.smora_A, smora.smora_B, smora.smora_router, smora.smora_bias)
    )
    expected = torch.zeros(2, 5, D_OUT, dtype=torch.float64)
    k, scale = 3, 6.0 / 3
    for i in range(2):
        for t in range(5):
            token = x[i, t].numpy()
            s = 1 / (1 + torch.exp(-torch.tensor(router @ token))).numpy()
            chosen = sorted(range(8), key=lambda j: -(s[j] + bias[j]))[:k]
            gate = s + bias if gate_with_bias else s  # released code: score + bias; paper: score
            total = sum(gate[j] for j in chosen)
            update = sum((k * gate[j] / total) * (a[j] @ token) * b[:, j] for j in chosen)
            expected[i, t] = torch.tensor(scale * update)
    assert torch.allclose(smora.delta(x, None), expected, atol=1e-12, rtol=0)
    assert torch.allclose(smora(x), smora.base_layer(x) + expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("gate_with_bias", [False, True])
@pytest.mark.parametrize("compute", ["dense", "sparse"])
def test_fast_paths_match_reference_path(compute, gate_with_bias):
    smora = layer(dtype=torch.float32, seed=3, r=16, top_k=4, compute=compute, gate_with_bias=gate_with_bias)
    x = torch.randn(4, 7, D_IN)
    assert torch.allclose(smora.delta(x, None), smora.delta_reference(x, None), atol=1e-5, rtol=1e-5)


def test_sparse_and_dense_paths_give_the_same_gradients():
    x = torch.randn(3, 5, D_IN)
    grads = []
    for compute in ("dense", "sparse"):
        smora = layer(dtype=torch.float32, seed=4, compute=compute)
        smora.delta(x, None).square().sum().backward()
        grads.append([p.grad for p in (smora.smora_A, smora.smora_B, smora.smora_router)])
    for dense, sparse in zip(*grads):
        assert torch.allclose(dense, sparse, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("r", "top_k", "compute", "grad", "sparse"),
    [
        (64, 1, "auto", False, True),
        (256, 4, "auto", False, True),
        (64, 2, "auto", False, False),
        (64, 8, "auto", False, False),
        (64, 1, "auto", True, False),
        (512, 1, "auto", True, False),
        (64, 8, "sparse", True, True),
        (64, 1, "dense", False, False),
    ],
)
def test_auto_dispatch_follows_the_measured_crossover(r, top_k, compute, grad, sparse):
    """Inference: sparse below k/r = 1/32. Training: dense at every k/r (sparse never measured faster)."""
    smora = layer(dtype=torch.float32, r=r, top_k=top_k, compute=compute)
    with torch.set_grad_enabled(grad):
        assert smora.uses_sparse(torch.zeros(1, D_IN)) is sparse


def test_gates_pick_k_ranks_that_sum_to_k():
    smora = layer(dtype=torch.float32)
    smora.state.record_routing = True
    smora.delta(torch.randn(3, 4, D_IN), None)
    gates = smora.state.routing[smora.name]
    assert gates.shape == (3, 4, 8)
    assert ((gates > 0).sum(-1) == 3).all()
    assert torch.allclose(gates.sum(-1), torch.full((3, 4), 3.0))


def test_router_trains_through_the_renormalised_gates():
    smora = layer(dtype=torch.float32)
    smora.delta(torch.randn(3, 4, D_IN), None).square().sum().backward()
    assert smora.smora_router.grad.abs().sum() > 0 and smora.smora_A.grad.abs().sum() > 0


def test_init_and_parameter_count():
    model = samora.get_model(tiny_model(), SMoRAConfig(r=8, top_k=2, target_modules=["q_proj", "v_proj"]))
    first = model.samora_adapter.layers["model.layers.0.self_attn.q_proj"]
    assert first.smora_A.shape == (8, 32) and first.smora_B.shape == (32, 8) and first.smora_router.shape == (8, 32)
    assert (
        torch.count_nonzero(first.smora_B) == 0
        and first.smora_A.abs().sum() > 0
        and first.smora_router.abs().sum() > 0
    )
    assert torch.count_nonzero(first.smora_bias) == 0
    # r (2 d_in + d_out) per module: A, router, B. q: 32 -> 32, v: 32 -> 16 (2 kv heads of 8).
    expected = 2 * (8 * (2 * 32 + 32) + 8 * (2 * 32 + 16))
    assert samora.trainable_parameters(model).trainable == expected


def test_task_ids_do_not_change_the_output(input_ids):
    model = samora.get_model(tiny_model(), SMoRAConfig(r=8, top_k=2, tasks=["a", "b", "c"]))
    for smora in model.samora_adapter.layers.values():
        nn.init.normal_(smora.smora_B)
    assert torch.equal(model(input_ids, task_ids=[0, 1, 2]).logits, model(input_ids, task_ids=[2, 2, 0]).logits)


def test_not_mergeable():
    with pytest.raises(samora.NotMergeableError, match="per token"):
        layer().delta_weight()


def test_invalid_top_k_names_the_field():
    with pytest.raises(ValueError, match="top_k"):
        SMoRAConfig(r=4, top_k=5)
    with pytest.raises(ValueError, match="bias_update_rate"):
        SMoRAConfig(bias_update_rate=-1.0)
    with pytest.raises(ValueError, match="compute must be one of"):
        SMoRAConfig(compute="fast")


def test_load_is_counted_once_per_training_forward_and_moves_the_bias():
    smora = layer(dtype=torch.float32, bias_update_rate=0.5)
    with torch.no_grad():
        smora.smora_bias.zero_()
    x = torch.randn(2, 5, D_IN)
    smora.eval()
    smora(x)
    assert smora.smora_load.sum() == 0, "eval forwards must not count"
    smora.train()
    smora.state.forward_count += 1
    smora(x)
    smora(x)  # same forward count: a checkpoint recomputation, not counted again
    load = smora.smora_load.clone()
    assert load.sum() == 2 * 5 * 3
    smora.after_optimizer_step()
    expected = 0.5 * torch.sign(load.float().mean() - load.float())
    assert torch.equal(smora.smora_bias, expected)
    assert smora.smora_load.sum() == 0


@pytest.mark.parametrize("reentrant", [True, False])
def test_gradient_checkpointing_counts_each_token_once(reentrant, input_ids):
    def load(checkpointing):
        model = samora.get_model(tiny_model(), SMoRAConfig(r=8, top_k=2, dropout=0.0))
        if checkpointing:
            enable_checkpointing(model, reentrant)
        model.train()
        model(input_ids, labels=input_ids).loss.backward()
        return torch.stack([smora.smora_load for smora in model.samora_adapter.layers.values()])

    plain = load(False)
    assert plain.sum(-1).eq(input_ids.numel() * 2).all()
    assert torch.equal(load(True), plain)


def _balance_on_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        smora = layer(dtype=torch.float32, r=4, top_k=1, bias_update_rate=1.0)
        with torch.no_grad():
            smora.smora_bias.zero_()
        smora.smora_load.copy_(torch.tensor([[3, 0, 0, 1], [0, 0, 2, 6]][rank]))
        smora.after_optimizer_step()
        torch.save(smora.smora_bias, f"{out_dir}/bias{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def test_data_parallel_ranks_share_one_bias_update(tmp_path):
    """Two gloo processes with different local loads end with the bias of the summed load."""
    torch.multiprocessing.spawn(_balance_on_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    biases = [torch.load(tmp_path / f"bias{rank}.pt") for rank in range(2)]
    total = torch.tensor([3.0, 0.0, 2.0, 7.0])  # mean 3
    assert torch.equal(biases[0], torch.sign(total.mean() - total)) and torch.equal(biases[1], biases[0])


def test_bias_update_balances_a_skewed_router():
    """A router that strongly prefers a few ranks ends up spreading tokens once the bias adapts."""
    smora = layer(dtype=torch.float32, seed=1, r=8, top_k=2, bias_update_rate=0.05)
    with torch.no_grad():
        smora.smora_bias.zero_()
        smora.smora_router.mul_(0.3)
        smora.smora_router[:2] += 2.0 * torch.randn(D_IN)  # ranks 0 and 1 dominate
    smora.train()
    x = torch.randn(64, D_IN)

    def load_after_forward():
        smora.state.forward_count += 1
        smora(x)
        return smora.smora_load.clone().float()

    before = load_after_forward()
    smora.smora_load.zero_()
    for _ in range(100):
        load_after_forward()
        smora.after_optimizer_step()
    after = load_after_forward()
    assert before.max() / before.mean() > 2.0, "the setup should start imbalanced"
    assert after.max() / after.mean() < 1.5 and after.min() > 0


def test_bias_is_saved_and_changes_routing(tmp_path, input_ids):
    model = samora.get_model(tiny_model(), SMoRAConfig(r=8, top_k=2))
    with torch.no_grad():
        for smora in model.samora_adapter.layers.values():
            nn.init.normal_(smora.smora_B)
    before = model(input_ids).logits
    with torch.no_grad():
        for smora in model.samora_adapter.layers.values():
            smora.smora_bias.copy_(torch.linspace(0, 5, 8))
    shifted = model(input_ids).logits
    assert not torch.allclose(before, shifted)
    samora.save_adapter(model, tmp_path)
    loaded = samora.load_adapter(tiny_model(), tmp_path)
    assert torch.equal(loaded(input_ids).logits, shifted)


def test_gate_with_bias_is_off_by_default_and_changes_the_gates():
    assert SMoRAConfig().gate_with_bias is False
    x = torch.randn(2, 5, D_IN, dtype=torch.float64)
    paper, released = layer(), layer(gate_with_bias=True)
    for smora in (paper, released):
        smora.smora_bias.mul_(0.05)
        smora.state.record_routing = True
        smora.delta(x, None)
    gates = [smora.state.routing[smora.name] for smora in (paper, released)]
    assert torch.equal(gates[0] > 0, gates[1] > 0)  # the same ranks are chosen
    assert (gates[0] - gates[1]).abs().max() > 1e-3  # with different gate values
    with pytest.raises(ValueError, match="gate_with_bias"):
        SMoRAConfig(gate_with_bias="yes").validate()


def test_load_counts_only_the_tokens_the_attention_mask_keeps():
    model = samora.get_model(tiny_model(), SMoRAConfig(r=8, top_k=2, dropout=0.0)).train()
    input_ids = torch.randint(3, 60, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 4:] = 0
    mask[2, 1:] = 0
    model(input_ids=input_ids, attention_mask=mask)
    layers = list(model.samora_adapter.layers.values())
    assert all(int(layer.smora_load.sum()) == 2 * int(mask.sum()) for layer in layers)
    unpadded = samora.get_model(tiny_model(), SMoRAConfig(r=8, top_k=2, dropout=0.0)).train()
    for row in range(3):  # each example alone, without padding: the same load
        length = int(mask[row].sum())
        unpadded(input_ids=input_ids[row : row + 1, :length])
    for padded, alone in zip(layers, unpadded.samora_adapter.layers.values()):
        assert torch.equal(padded.smora_load, alone.smora_load)
