"""Embeddings are adapted exactly once, however they reach the model (input_ids or inputs_embeds=, any source).

The reference for every case is the plain base model fed ``bank(raw embeddings)`` by hand: one application of the
AdaLink, with the call's task routing.
"""

import pytest
import torch

from adalink import AdaLinkConfig, PeftModel, get_peft_model
from tiny_models import IMAGE_TOKEN, IMAGE_TOKENS_PER_IMAGE, VOCAB, build, perturb_adalink, text_batch, tiny_llava

TASKS = ["a", "b", "a"]  # mixed-task routing, one task per example
SOURCES = ["input_ids", "embeds_adapter_on", "embeds_adapter_off", "embeds_raw_weight"]


def _model(name: str, **config) -> PeftModel:
    model = get_peft_model(build(name), AdaLinkConfig(rank=4, tasks=["a", "b"], **config)).eval()
    perturb_adalink(model)
    return model


def _tables(model: PeftModel) -> dict[str, torch.nn.Module]:
    """The embedding module that each ``*inputs_embeds`` keyword stands in for."""
    base = model.base_model
    if base.config.is_encoder_decoder:
        return {
            "inputs_embeds": base.get_encoder().get_input_embeddings(),
            "decoder_inputs_embeds": base.get_decoder().get_input_embeddings(),
        }
    return {"inputs_embeds": base.get_input_embeddings()}


def _ids(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"inputs_embeds": batch["input_ids"], "decoder_inputs_embeds": batch.get("decoder_input_ids")}


def _embeds(model: PeftModel, ids: torch.Tensor, table: torch.nn.Module, source: str) -> torch.Tensor:
    if source == "embeds_adapter_on":
        return table(ids)
    if source == "embeds_adapter_off":
        with model.disable_adapter():
            return table(ids)
    return table.weight[ids] * getattr(table, "embed_scale", 1.0)  # embeds_raw_weight


def _inputs(model: PeftModel, batch: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``batch`` with its ids replaced by embeddings made the way ``source`` says."""
    if source == "input_ids":
        return batch
    inputs = {k: v for k, v in batch.items() if k not in ("input_ids", "decoder_input_ids")}
    ids = _ids(batch)
    for key, table in _tables(model).items():
        inputs[key] = _embeds(model, ids[key], table, source)
    return inputs


def _reference(model: PeftModel, batch: dict[str, torch.Tensor], adapted: set[str], tasks) -> torch.Tensor:
    """The base model fed raw embeddings, with the AdaLink applied once by hand to the ``adapted`` ones."""
    bank = model.adalink["text"]
    task_ids = torch.tensor([model.task_names.index(t) for t in tasks])
    inputs = _inputs(model, batch, "embeds_adapter_off")
    for key in adapted:
        inputs[key] = bank(inputs[key], task_ids)
    with model.disable_adapter():
        return model(**inputs).logits


def _batch(name: str) -> dict[str, torch.Tensor]:
    batch = text_batch(batch=3, length=6)
    if name == "t5":
        batch["decoder_input_ids"] = batch["input_ids"][:, :4].flip(0)
    return batch


@pytest.mark.parametrize("source", SOURCES)
def test_every_source_of_embeddings_is_adapted_once(text_model_name, source):
    model = _model(text_model_name)
    batch = _batch(text_model_name)
    expected = _reference(model, batch, {"inputs_embeds"}, TASKS)
    got = model(**_inputs(model, batch, source), task=TASKS).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("source", SOURCES)
def test_one_task_default_is_adapted_once(source):
    model = _model("llama")
    model.set_task("b")  # the default task routes the call
    batch = _batch("llama")
    expected = _reference(model, batch, {"inputs_embeds"}, ["b"] * 3)
    torch.testing.assert_close(model(**_inputs(model, batch, source)).logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("sides", ["encoder", "decoder", "both"])
def test_t5_sides_are_each_adapted_once(sides, source):
    model = _model("t5", sides=sides)
    batch = _batch("t5")
    adapted = {"encoder": {"inputs_embeds"}, "decoder": {"decoder_inputs_embeds"}}.get(sides, set(_tables(model)))
    expected = _reference(model, batch, adapted, TASKS)
    got = model(**_inputs(model, batch, source), task=TASKS).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("source", SOURCES[1:])
@pytest.mark.parametrize("name", ["gpt2", "llama", "t5"])
def test_greedy_generate_from_any_embeddings_equals_from_ids(name, source):
    model = _model(name)
    perturb_adalink(model, scale=2.0)
    batch = text_batch(batch=3, length=5)
    kwargs = {"max_new_tokens": 4, "min_new_tokens": 4, "do_sample": False, "task": TASKS}
    from_ids = model.generate(**batch, **kwargs)
    embeds = _embeds(model, batch["input_ids"], _tables(model)["inputs_embeds"], source)
    from_embeds = model.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], **kwargs)
    assert torch.equal(from_embeds, from_ids[:, -from_embeds.shape[1] :])


def _llava(tasks=("a", "b")) -> PeftModel:
    torch.manual_seed(0)
    model = get_peft_model(tiny_llava().eval(), AdaLinkConfig(rank=4, tasks=list(tasks))).eval()
    perturb_adalink(model)
    return model


def _language_model_inputs(model: PeftModel, **inputs) -> torch.Tensor:
    """The fused sequence that the outer forward hands to the inner language model as ``inputs_embeds``."""
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach().clone()

    handle = model.base_model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(**inputs)
    finally:
        handle.remove()
    return captured["embeds"]


def test_llava_text_embeddings_made_inside_the_outer_forward_are_adapted_once():
    model = _llava()
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, VOCAB, (3, 10), generator=generator)
    ids[:, 2 : 2 + IMAGE_TOKENS_PER_IMAGE] = IMAGE_TOKEN
    inputs = {"input_ids": ids, "pixel_values": torch.randn(3, 3, 16, 16, generator=generator)}
    with model.disable_adapter():
        raw = _language_model_inputs(model, **inputs)
    text = (ids != IMAGE_TOKEN).unsqueeze(-1)
    expected = torch.where(text, model.adalink["text"](raw, torch.tensor([0, 1, 0])), raw)
    torch.testing.assert_close(_language_model_inputs(model, **inputs, task=TASKS), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("source", SOURCES)
def test_llava_text_only_is_adapted_once(source):
    model = _llava()
    batch = text_batch(batch=3, length=6)
    table = model.base_model.get_input_embeddings()
    with model.disable_adapter():
        expected = model(inputs_embeds=model.adalink["text"](table(batch["input_ids"]), torch.tensor([0, 1, 0])))
    inputs = batch if source == "input_ids" else {"inputs_embeds": _embeds(model, batch["input_ids"], table, source)}
    got = model(**{k: v for k, v in inputs.items() if k != "attention_mask"}, task=TASKS)
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-5, rtol=1e-5)


def test_embeddings_derived_from_the_adapted_module_are_base_embeddings():
    model = _model("gpt2")
    batch = _batch("gpt2")
    table = model.base_model.get_input_embeddings()
    with model.disable_adapter():
        raw = table(batch["input_ids"])
    assert torch.equal(table(batch["input_ids"]), raw), "called from outside, the embedding is the base one"
    embeds = table(batch["input_ids"]).clone()
    derived = torch.cat([embeds[:, :3], embeds[:, 3:]], dim=1)  # clone + concatenation: still base embeddings
    expected = _reference(model, batch, {"inputs_embeds"}, TASKS)
    got = model(inputs_embeds=derived, attention_mask=batch["attention_mask"], task=TASKS).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_module_between_the_model_and_its_embedding_adapts_input_ids():
    model = _model("gpt2")
    model.set_task("b")  # a direct call of an inner module gets no task= from the wrapper
    ids = _batch("gpt2")["input_ids"]
    inner = model.base_model.transformer
    with model.disable_adapter():
        expected = inner(inputs_embeds=model.adalink["text"](inner.wte(ids), 1)).last_hidden_state
    torch.testing.assert_close(inner(input_ids=ids).last_hidden_state, expected, atol=1e-6, rtol=0)


def test_a_failed_call_leaves_no_trace():
    model = _model("llama")
    batch = _batch("llama")
    table = model.base_model.get_input_embeddings()
    with model.disable_adapter():
        raw = table(batch["input_ids"])
    with pytest.raises(ValueError, match="task= has 2 entries"):
        model(**batch, task=["a", "b"])
    truncate = model.base_model.model.embed_tokens.register_forward_pre_hook(lambda m, a: (a[0][:2],))
    with truncate, pytest.raises(ValueError, match="one row"):  # raised inside the forward, by the embedding's hook
        model(**batch, task=TASKS)
    assert torch.equal(table(batch["input_ids"]), raw), "an exception must not leave the model 'inside' a call"
    expected = _reference(model, batch, {"inputs_embeds"}, TASKS)
    torch.testing.assert_close(model(**batch, task=TASKS).logits, expected, atol=1e-5, rtol=1e-5)
