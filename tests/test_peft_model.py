"""Invariants of an attached AdaLink on tiny BERT, GPT-2, Llama and T5."""

import pytest
import torch

from adalink import AdaLinkConfig, UnknownTaskError, get_peft_model
from tiny_models import VOCAB, build, model_inputs, perturb_adalink, text_batch

TASKS = ["sst2", "topic", "nli"]


def _attached(name: str, **config) -> tuple[torch.nn.Module, torch.nn.Module]:
    base = build(name)
    return base, get_peft_model(base, AdaLinkConfig(rank=4, tasks=TASKS, **config)).eval()


def test_identity_at_initialisation(text_model_name):
    reference = build(text_model_name)
    batch = model_inputs(text_model_name, text_batch())
    expected = reference(**batch).logits
    _, model = _attached(text_model_name)
    for task in TASKS:
        out = model(**batch, task=task).logits
        with model.disable_adapter():
            assert torch.equal(out, model(**batch).logits)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)  # frozen vs unfrozen kernels differ by ~1 ulp


def test_trainable_parameters_are_two_d_r_per_task(text_model_name):
    _, model = _attached(text_model_name)
    trainable, total = model.get_nb_trainable_parameters()
    assert trainable == len(TASKS) * 2 * 32 * 4
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"adalink.text.down", "adalink.text.up"}
    assert total == trainable + sum(p.numel() for p in {id(p): p for p in build(text_model_name).parameters()}.values())


def test_only_adalink_learns_and_backbone_stays_bit_identical(text_model_name):
    base, model = _attached(text_model_name)
    before = {name: p.detach().clone() for name, p in base.state_dict().items()}
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = model_inputs(text_model_name, text_batch())
    model.train()
    losses = []
    for step in range(4):
        logits = model(**batch, task=TASKS[step % 2]).logits
        target = torch.zeros(logits.shape[:-1], dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        loss.backward()
        assert all(p.grad is None for p in base.parameters()), "gradient reached the frozen base model"
        optimiser.step()
        optimiser.zero_grad()
        losses.append(loss.item())
    assert all(torch.equal(before[name], p) for name, p in base.state_dict().items())
    up = model.adalink["text"].up
    assert up[0].abs().sum() > 0 and up[1].abs().sum() > 0 and torch.equal(up[2], torch.zeros_like(up[2]))


def test_mixed_task_batch_equals_each_task_alone(text_model_name):
    _, model = _attached(text_model_name)
    perturb_adalink(model)
    batch = model_inputs(text_model_name, text_batch(batch=5))
    tasks = ["nli", "sst2", "nli", "topic", "sst2"]
    mixed = model(**batch, task=tasks).logits
    for task in TASKS:
        alone = model(**batch, task=task).logits
        rows = [i for i, t in enumerate(tasks) if t == task]
        torch.testing.assert_close(mixed[rows], alone[rows], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(**batch, task="sst2").logits, model(**batch, task="nli").logits)


def test_task_indices_tensor_equals_names(text_model_name):
    _, model = _attached(text_model_name)
    perturb_adalink(model)
    batch = model_inputs(text_model_name, text_batch(batch=3))
    by_name = model(**batch, task=["topic", "nli", "sst2"]).logits
    by_index = model(**batch, task=torch.tensor([1, 2, 0])).logits
    assert torch.equal(by_name, by_index)


def test_padding_does_not_leak_between_examples():
    _, model = _attached("llama")
    perturb_adalink(model)
    batch = text_batch(batch=2, length=8)
    batch["attention_mask"][1, :3] = 0  # left padding on the second example
    mixed = model(**batch, task=["sst2", "nli"]).logits
    alone = model(input_ids=batch["input_ids"][1:, 3:], task="nli").logits
    torch.testing.assert_close(mixed[1, 3:], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["bert", "gpt2", "llama", "t5"])
def test_inputs_embeds_equal_input_ids(name):
    base, model = _attached(name)
    perturb_adalink(model)
    batch = model_inputs(name, text_batch(batch=3))
    table = base.get_encoder().get_input_embeddings() if name == "t5" else base.get_input_embeddings()
    with model.disable_adapter():
        embeds = table(batch["input_ids"])
    by_embeds = {k: v for k, v in batch.items() if k != "input_ids"}
    tasks = ["nli", "sst2", "nli"]
    expected = model(**batch, task=tasks).logits
    assert torch.equal(model(**by_embeds, inputs_embeds=embeds, task=tasks).logits, expected)


GENERATION_MODES = {
    "greedy": {},
    "beam": {"num_beams": 3, "num_return_sequences": 2},
    "sample": {"do_sample": True, "top_k": 1, "num_return_sequences": 2},  # top_k=1: sampling path, deterministic
}


@pytest.mark.parametrize("mode", sorted(GENERATION_MODES))
@pytest.mark.parametrize("name", ["gpt2", "llama", "t5"])
def test_generate_with_mixed_tasks_equals_each_example_alone(name, mode):
    _, model = _attached(name)
    perturb_adalink(model, scale=2.0)
    batch = text_batch(batch=3, length=5)
    tasks = ["nli", "sst2", "nli"]
    kwargs = {"max_new_tokens": 6, "min_new_tokens": 6, **GENERATION_MODES[mode]}
    out = model.generate(**batch, task=tasks, **kwargs)
    per_example = out.shape[0] // len(tasks)
    for i, task in enumerate(tasks):
        alone = model.generate(**{k: v[i : i + 1] for k, v in batch.items()}, task=task, **kwargs)
        assert torch.equal(out[i * per_example : (i + 1) * per_example], alone)
    assert not torch.equal(model.generate(**batch, task="sst2", **kwargs), out), "tasks made no difference"


@pytest.mark.parametrize("name", ["llama", "t5"])
def test_generate_from_inputs_embeds(name):
    base, model = _attached(name)
    perturb_adalink(model, scale=2.0)
    batch = text_batch(batch=2, length=5)
    table = base.get_encoder().get_input_embeddings() if name == "t5" else base.get_input_embeddings()
    with model.disable_adapter():
        embeds = table(batch["input_ids"])
    kwargs = {"max_new_tokens": 4, "min_new_tokens": 4, "num_beams": 2, "task": ["nli", "topic"]}
    from_ids = model.generate(**batch, **kwargs)
    from_embeds = model.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **kwargs)
    assert torch.equal(from_embeds, from_ids[:, -from_embeds.shape[1] :])


def test_unknown_task_lists_known_ones():
    _, model = _attached("gpt2")
    batch = text_batch(batch=2)
    with pytest.raises(UnknownTaskError, match=r"Unknown task 'qa'; this adapter has tasks \['sst2', 'topic', 'nli'\]"):
        model(**batch, task=["sst2", "qa"])
    with pytest.raises(UnknownTaskError, match="No task given"):
        model(**batch)
    with pytest.raises(UnknownTaskError, match=r"\[0, 3\)"):
        model(**batch, task=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="task= has 3 entries but the batch has 2 examples"):
        model(**batch, task=["sst2", "nli", "nli"])


def test_single_task_adapter_needs_no_task_and_set_task_sets_default():
    base = build("gpt2")
    model = get_peft_model(base, AdaLinkConfig(rank=2)).eval()
    batch = text_batch()
    assert model(**batch).logits.shape == (4, 7, VOCAB)
    multi = get_peft_model(build("gpt2"), AdaLinkConfig(rank=2, tasks=TASKS)).eval()
    perturb_adalink(multi)
    multi.set_task("nli")
    assert torch.equal(multi(**batch).logits, multi(**batch, task="nli").logits)


def test_unload_restores_the_original_model():
    reference = build("llama")
    base, model = _attached("llama")
    perturb_adalink(model)
    batch = text_batch()
    restored = model.unload()
    assert restored is base
    assert all(p.requires_grad for p in restored.parameters())
    assert not any(isinstance(m, torch.nn.ModuleDict) for m in restored.modules())
    torch.testing.assert_close(restored(**batch).logits, reference(**batch).logits, atol=0, rtol=0)


def test_attributes_delegate_to_the_base_model():
    base, model = _attached("gpt2")
    assert model.config is base.config and model.get_base_model() is base


def test_print_trainable_parameters(capsys):
    model = get_peft_model(build("bert"), AdaLinkConfig(rank=4, modules_to_save=["classifier"]))
    model.print_trainable_parameters()
    line = capsys.readouterr().out
    head = 32 * 3 + 3
    assert f"trainable params: {256 + head:,d}" in line and f"modules_to_save {head:,d}" in line


def test_a_refused_attach_leaves_the_model_trainable_as_given():
    from adalink import ConfigError

    model = build("bert")
    with pytest.raises(ConfigError, match=r"no\.such\.module"):
        get_peft_model(model, AdaLinkConfig(modalities={"image": "no.such.module"}))
    assert all(p.requires_grad for p in model.parameters())
