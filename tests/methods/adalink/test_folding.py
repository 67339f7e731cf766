"""merge_and_unload folds an identity-activation AdaLink into the vocabulary table (paper §3.3)."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from adalink import AdaLinkBank, AdaLinkConfig, FoldError, UnknownTaskError, get_peft_model
from adalink.methods.adalink.folding import fold_site
from adalink.methods.adalink.sites import Site
from tiny_models import build, model_inputs, perturb_adalink, text_batch, tiny_llava

AUTO = {"bert": AutoModelForSequenceClassification, "gpt2": AutoModelForCausalLM, "llama": AutoModelForCausalLM}
AUTO["t5"] = AutoModelForSeq2SeqLM


def _trained(name: str, **config):
    base = build(name)
    model = get_peft_model(base, AdaLinkConfig(rank=4, tasks=["a", "b"], **config)).eval()
    perturb_adalink(model)
    return base, model


def test_folded_model_equals_adalink_model_and_reloads_without_adalink(text_model_name, tmp_path):
    base, model = _trained(text_model_name)
    head = base.get_output_embeddings()
    head_before = None if head is None else head.weight.detach().clone()
    batch = model_inputs(text_model_name, text_batch())
    expected = model(**batch, task="b").logits
    merged = model.merge_and_unload(task="b")
    assert merged is base
    assert not any(isinstance(m, AdaLinkBank) for m in merged.modules()), "AdaLink modules left behind"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in merged.modules()), "hooks left behind"
    torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=0)
    if head is not None:  # a tied output head must keep the original table
        assert torch.equal(merged.get_output_embeddings().weight, head_before)

    merged.save_pretrained(tmp_path)  # a plain transformers checkpoint
    reloaded = AUTO[text_model_name].from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-5, rtol=0)


def test_encoder_only_fold_leaves_the_decoder_and_head_alone():
    base, model = _trained("t5")
    shared_before = base.shared.weight.detach().clone()
    merged = model.merge_and_unload(task="a")
    assert torch.equal(merged.get_decoder().get_input_embeddings().weight, shared_before)
    assert torch.equal(merged.lm_head.weight, shared_before)
    assert not torch.equal(merged.get_encoder().get_input_embeddings().weight, shared_before)


def test_both_sides_fold_equals_adalink():
    _, model = _trained("t5", sides="both")
    batch = model_inputs("t5", text_batch())
    expected = model(**batch, task="a").logits
    torch.testing.assert_close(model.merge_and_unload(task="a")(**batch).logits, expected, atol=1e-5, rtol=0)


def test_fold_into_a_linear_projector():
    torch.manual_seed(0)
    base = tiny_llava().eval()
    config = AdaLinkConfig(rank=4, modalities={"image": "model.multi_modal_projector.linear_2"})
    model = get_peft_model(base, config).eval()
    perturb_adalink(model)
    ids = torch.randint(5, 90, (2, 8))
    ids[:, 1:5] = 3
    pixels = torch.randn(2, 3, 16, 16)
    expected = model(input_ids=ids, pixel_values=pixels).logits
    merged = model.merge_and_unload()
    torch.testing.assert_close(merged(input_ids=ids, pixel_values=pixels).logits, expected, atol=1e-5, rtol=0)


def test_non_linear_activation_cannot_fold():
    _, model = _trained("gpt2", activation="gelu")
    with pytest.raises(FoldError, match="activation='gelu'"):
        model.merge_and_unload(task="a")


def test_module_that_is_not_a_lookup_or_linear_cannot_fold_and_stays_attached():
    model = get_peft_model(tiny_llava(), AdaLinkConfig(modalities={"image": "model.multi_modal_projector"}))
    with pytest.raises(FoldError, match="LlavaMultiModalProjector"):
        model.merge_and_unload()
    assert model._attachment.handles, "a refused fold must leave the adapter attached"


def test_multi_task_fold_needs_a_task():
    _, model = _trained("gpt2")
    with pytest.raises(UnknownTaskError, match=r"task= one of \['a', 'b'\]"):
        model.merge_and_unload()


def _fold(module: torch.nn.Module, linear_map: torch.Tensor) -> None:
    fold_site(torch.nn.Sequential(module), Site("text", "0", module, linear_map.shape[0], None), linear_map)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["embedding", "linear"])
def test_fold_matches_the_float64_reference(kind, dtype):
    torch.manual_seed(0)
    module = torch.nn.Embedding(1000, 48, dtype=dtype) if kind == "embedding" else torch.nn.Linear(700, 48, dtype=dtype)
    bank = AdaLinkBank(1, 48, 4)
    torch.nn.init.normal_(bank.up, std=0.1)
    exact = bank.down[0].detach().double() @ bank.up[0].detach().double()  # the float64 reference map
    weight, bias = module.weight.detach().double(), getattr(module, "bias", None)
    expected = weight + (weight @ exact if kind == "embedding" else exact.T @ weight)
    _fold(module, bank.linear_map(0))
    assert module.weight.dtype == dtype and module.weight.is_contiguous()
    torch.testing.assert_close(module.weight, expected.to(dtype))
    if bias is not None:
        torch.testing.assert_close(module.bias, (bias.double() + bias.double() @ exact).to(dtype))


_MEASURE = """
import json, re, sys, torch
from adalink.methods.adalink.folding import fold_site
from adalink.methods.adalink.sites import Site
torch.set_num_threads(1)
kind, rows, dim, dtype = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), getattr(torch, sys.argv[4])
def status(field):
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
def make(rows, dim):
    layer = torch.nn.Embedding if kind == "embedding" else torch.nn.Linear
    return layer(rows, dim, dtype=dtype).requires_grad_(False)
def fold(module):
    down, up = torch.randn(dim, 8), torch.randn(8, dim)
    fold_site(torch.nn.Sequential(module), Site("text", "0", module, dim, None), down @ up)
fold(make(4 * dim, dim))  # warm-up: kernels and libraries load outside the measured window
module = make(rows, dim)
table = module.weight.numel() * module.weight.element_size()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
fold(module)
print(json.dumps({"table": table, "peak_over_table": status("VmHWM") - before - table}))
"""


def measure_fold_memory(kind: str, rows: int, dim: int, dtype: str) -> dict[str, int]:
    """Peak resident memory that folding adds beyond the folded table itself, measured in a fresh process."""
    import json
    import os
    import subprocess
    import sys

    import adalink

    env = {**os.environ, "PYTHONPATH": str(Path(adalink.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # large blocks are mapped and unmapped, so RSS follows live memory
    command = [sys.executable, "-c", _MEASURE, kind, str(rows), str(dim), dtype]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
@pytest.mark.parametrize(
    ("kind", "dtype"), [("embedding", "float32"), ("embedding", "bfloat16"), ("linear", "float32")]
)
def test_fold_needs_little_memory_beyond_the_new_table(kind, dtype):
    result = measure_fold_memory(kind, 32768, 512, dtype)  # a 64 MiB (fp32) table; the (d, d) map is 2 MiB
    assert result["peak_over_table"] <= 0.10 * result["table"], result
