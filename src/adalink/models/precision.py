"""How a run holds its frozen base in memory: the weights' dtype, a quantized copy of its linear layers, and
activation (gradient) checkpointing.

Only the frozen base changes: the method's own parameters, a new classification head and the optimiser state stay
float32 (AdaLink computes ``f(E·W_down)·W_up`` in float32 and casts the result back to the base's dtype,
:class:`~adalink.methods.adalink.AdaLinkBank`). Quantization goes through maintained libraries, imported only when
asked for:

- ``int8``: torchao's weight-only int8 (``quantize_(model, Int8WeightOnlyConfig())``), on CPU and GPU;
- ``nf4`` / ``int8-bnb``: bitsandbytes 4-bit NF4 / LLM.int8() through ``BitsAndBytesConfig`` (made for CUDA; this
  bitsandbytes also runs both on CPU, slowly).

Every one of them back-propagates to its inputs, which is all that AdaLink (at the embeddings) and LoRA (beside the
frozen layer) need. (torchao's int8 layer keeps a dequantized float copy of its weight for the backward pass, so
in training it saves memory only with checkpointing, which frees those copies block by block.)

A converted base keeps the fingerprint of the float32 weights it was made from
(:func:`adalink.fingerprint.keep_float_fingerprints`), so an adapter trained on it loads onto the float base and the
other way round. See ``docs/scaling.md`` for which combinations work and what they save.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import MissingPackageError, UsageError
from ..fingerprint import float_fingerprints, keep_float_fingerprints

__all__ = [
    "DTYPES",
    "QUANTIZATIONS",
    "BaseLoading",
    "check_trainable_dtype",
    "enable_checkpointing",
    "keep_float32",
    "load_base",
    "stored_dtype",
]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# name -> what it is and where it runs
QUANTIZATIONS: dict[str, str] = {
    "none": "no quantization",
    "int8": "torchao weight-only int8 (CPU or GPU)",
    "nf4": "bitsandbytes 4-bit NF4 (a GPU; runs on CPU too, slowly)",
    "int8-bnb": "bitsandbytes LLM.int8() (a GPU; runs on CPU too, slowly)",
}
_BNB = ("nf4", "int8-bnb")

# What does not work, found by training every method on a tiny Llama with each option (tests/training/
# test_precision.py): (option, methods, why). The other methods train and their gradients match a float32 run's.
_PREFIX = frozenset({"prefix_tuning", "mam", "unipelt"})  # feed a trained prefix through the key/value cache
_UNSUPPORTED: tuple[tuple[str, frozenset[str], str], ...] = (
    (
        "gradient_checkpointing",
        _PREFIX,
        "transformers' checkpointing turns off the key/value cache it feeds its prefix",
    ),
    ("dtype", _PREFIX, "its float32 prefix meets the base's lower-precision attention (a dtype mismatch)"),
    ("dtype", frozenset({"bitfit", "ln_tuning"}), "it trains deltas of the base's own tensors, in their dtype"),
    ("int8", frozenset({"dora"}), "it needs the frozen weight's column norms, which torchao's int8 tensor lacks"),
    (
        "nf4",
        frozenset({"dora"}),
        "it reads the frozen weight itself, which bitsandbytes packs (gradients come out wrong)",
    ),
    ("int8-bnb", frozenset({"dora"}), "it reads the frozen weight itself, which bitsandbytes packs (gradients wrong)"),
    (
        "nf4",
        frozenset({"houlsby", "pfeiffer", "parallel", "compacter", "compacter_pp", "mam", "unipelt"}),
        "it sizes its modules from the frozen weight's shape, which bitsandbytes' 4-bit packing changes",
    ),
)


@dataclass(frozen=True)
class BaseLoading:
    """How the frozen base is loaded and run; the defaults load it as it always was (float32, no checkpointing)."""

    dtype: str = "float32"  # dtype of the frozen base weights: float32, bfloat16 or float16
    quantize: str = "none"  # the base's linear layers: none, int8 (torchao), nf4 or int8-bnb (bitsandbytes)
    gradient_checkpointing: bool = False  # recompute each block's activations in the backward pass

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"BaseLoading.dtype={self.dtype!r} is invalid: expected one of {list(DTYPES)}.")
        if self.quantize not in QUANTIZATIONS:
            raise UsageError(
                f"BaseLoading.quantize={self.quantize!r} is invalid: expected one of {list(QUANTIZATIONS)}."
            )
        if not isinstance(self.gradient_checkpointing, bool):
            raise UsageError(
                f"BaseLoading.gradient_checkpointing={self.gradient_checkpointing!r} is invalid: expected a bool."
            )

    @property
    def converts(self) -> bool:
        """Whether the frozen weights differ from the checkpoint's float32 ones."""
        return self.dtype != "float32" or self.quantize != "none"

    @property
    def is_default(self) -> bool:
        return self == BaseLoading()

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def for_inference(self) -> BaseLoading:
        """The same weights without checkpointing (it only matters while training)."""
        return BaseLoading(self.dtype, self.quantize)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BaseLoading:
        """From a mapping with (some of) the fields, e.g. ``TrainArgs.options()`` or a run's ``run.json["args"]``
        (a run from before these options existed loads as float32)."""
        return cls(
            dtype=options.get("dtype") or "float32",
            quantize=options.get("quantize") or "none",
            gradient_checkpointing=bool(options.get("gradient_checkpointing", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check_method(self, method: str) -> None:
        """Refuse a method this loading is known not to work with, saying why (``docs/scaling.md`` has the table).

        Raises:
            ValueError: Naming the option, the method and the reason.
        """
        given = {
            "gradient_checkpointing": self.gradient_checkpointing,
            "dtype": self.dtype != "float32",
            self.quantize: self.quantize != "none",
        }
        for option, methods, why in _UNSUPPORTED:
            if given.get(option) and method in methods:
                flag = f"--quantize {option}" if option in QUANTIZATIONS else f"--{option.replace('_', '-')}"
                flag += f" {self.dtype}" if option == "dtype" else ""
                raise UsageError(f"{flag} does not work with --method {method}: {why}.")


def load_base(
    auto_class: Any,
    path: str,
    *,
    loading: BaseLoading,
    heads: Callable[[nn.Module], Sequence[str]] = lambda model: (),
    **kwargs: Any,
) -> nn.Module:
    """``auto_class.from_pretrained(path, **kwargs)`` held as ``loading`` says.

    A converted base is first loaded in float32 exactly as an unconverted run loads it (so new heads get the same
    initial weights from the caller's seed), fingerprinted, then cast and quantized. ``heads(model)`` names the new
    modules that train with every method (a classification head): they stay float32 and unquantized, their input
    cast to float32 by a forward pre-hook.
    """
    if _stored_as_wanted(path, loading):
        model = auto_class.from_pretrained(path, dtype=loading.torch_dtype, **kwargs)  # nothing is rounded: its
        for name in heads(model):  # float32 upcast, and so its fingerprint, is the float32 base's
            keep_float32(model.get_submodule(name))
    elif loading.quantize in _BNB:
        model = _load_bitsandbytes(auto_class, path, loading, heads, **kwargs)
    else:
        model = auto_class.from_pretrained(path, dtype=torch.float32, **kwargs)
        if loading.converts:
            _convert(model, loading, list(heads(model)))
    if loading.gradient_checkpointing:
        enable_checkpointing(model)
    return model


def _convert(model: nn.Module, loading: BaseLoading, heads: list[str]) -> None:
    """Cast and quantize the float32 ``model`` in place, keeping the fingerprint of its float32 weights."""
    fingerprints = float_fingerprints(model)
    _cast_frozen(model, loading.torch_dtype, keep=heads)
    if loading.quantize == "int8":
        _quantize_torchao(model, skip=heads)
        if loading.dtype == "float32":
            _own_storage(model)
    for name in heads:
        keep_float32(model.get_submodule(name))
    keep_float_fingerprints(model, fingerprints, loaded_as={"dtype": loading.dtype, "quantize": loading.quantize})


def _stored_as_wanted(path: str, loading: BaseLoading) -> bool:
    """Whether the checkpoint is stored in the wanted lower precision, so it can be loaded straight into it (no
    float32 copy in memory) and nothing needs quantizing."""
    if loading.quantize != "none" or loading.dtype == "float32":
        return False
    return stored_dtype(path) == loading.dtype


def stored_dtype(path: str) -> str:
    """The dtype a checkpoint's config says its weights are stored in, a key of :data:`DTYPES` (float32 when the
    config names none, or one that is not a float dtype)."""
    from transformers import AutoConfig

    stored = getattr(AutoConfig.from_pretrained(path), "dtype", None)
    if isinstance(stored, torch.dtype):
        return {dtype: name for name, dtype in DTYPES.items()}.get(stored, "float32")
    return stored if stored in DTYPES else "float32"


def _cast_frozen(model: nn.Module, dtype: torch.dtype, *, keep: Sequence[str]) -> None:
    """Cast every floating parameter and buffer to ``dtype``, except under ``keep`` and the modules the model's
    class keeps in float32 (``_keep_in_fp32_modules``, e.g. T5's ``wo`` in float16)."""
    if dtype == torch.float32:
        return
    fp32_names = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    for name, module in model.named_modules():
        parts = name.split(".")
        if any(name == k or name.startswith(k + ".") for k in keep) or any(k in parts for k in fp32_names):
            continue
        for tensors in (module._parameters, module._buffers):
            for tensor in tensors.values():
                if tensor is not None and tensor.is_floating_point():
                    tensor.data = tensor.data.to(dtype)


def _own_storage(model: nn.Module) -> None:
    """Copy the tensors left as loaded (float32 embeddings, norms) out of the checkpoint file's memory map, so that
    the map, with the pages of every weight read while fingerprinting, is released once quantization replaced the
    rest (else those pages stay in the process's resident memory)."""
    for module in model.modules():
        for tensors in (module._parameters, module._buffers):
            for tensor in tensors.values():
                if tensor is not None and type(tensor) in (torch.Tensor, nn.Parameter):
                    tensor.data = tensor.data.clone()


def _skipped_linears(model: nn.Module, heads: Sequence[str]) -> set[int]:
    """The linear layers a quantizer leaves alone: the heads, and the output embeddings (often tied to the input
    table, and the layer most sensitive to rounding; bitsandbytes skips it too)."""
    skipped = {id(model.get_submodule(name)) for name in heads}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:
        skipped.add(id(output))
    return skipped


def _quantize_torchao(model: nn.Module, *, skip: Sequence[str]) -> None:
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError as err:
        raise MissingPackageError(
            f"--quantize int8 needs torchao ({err}); install it with `pip install 'adalink[quant]'`."
        ) from None
    skipped = _skipped_linears(model, skip)
    chosen = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in skipped]
    if not chosen:
        raise UsageError(
            f"--quantize int8 found no nn.Linear layer to quantize in {type(model).__name__} (torchao quantizes "
            "nn.Linear only; GPT-2's layers, for one, are transformers Conv1D)."
        )
    ids = {id(m) for m in chosen}
    quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda module, _: id(module) in ids)


def _load_bitsandbytes(
    auto_class: Any, path: str, loading: BaseLoading, heads: Callable[[nn.Module], Sequence[str]], **kwargs: Any
) -> nn.Module:
    """Load ``path`` in float32 (to fingerprint it and initialise new heads as an unconverted run does), free it,
    and load it again, quantized by bitsandbytes while loading; the heads get the float32 load's weights."""
    try:
        import bitsandbytes  # noqa: F401  (named in the error below when missing)
        from transformers import BitsAndBytesConfig
    except ImportError as err:
        raise MissingPackageError(
            f"--quantize {loading.quantize} needs bitsandbytes ({err}); install it with `pip install 'adalink[quant]'`."
        ) from None
    float_model = auto_class.from_pretrained(path, dtype=torch.float32, **kwargs)
    fingerprints = float_fingerprints(float_model)
    head_names = list(heads(float_model))
    head_state = {name: float_model.get_submodule(name).state_dict() for name in head_names}
    skipped = _skipped_linears(float_model, head_names)
    skip = [name for name, module in float_model.named_modules() if id(module) in skipped]
    del float_model
    if loading.quantize == "nf4":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=loading.torch_dtype,
            llm_int8_skip_modules=skip,
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    model = auto_class.from_pretrained(
        path, quantization_config=config, device_map={"": device}, dtype=loading.torch_dtype, **kwargs
    )
    for name, state in head_state.items():
        head = model.get_submodule(name)
        quantized = [type(m).__name__ for m in head.modules() if type(m).__module__.startswith("bitsandbytes")]
        if quantized:
            raise RuntimeError(f"bitsandbytes quantized layers {quantized} of the head {name!r}; it must train.")
        head.to(torch.float32).load_state_dict(state)
        keep_float32(head)
    keep_float_fingerprints(model, fingerprints, loaded_as={"dtype": loading.dtype, "quantize": loading.quantize})
    return model


def keep_float32(head: nn.Module) -> None:
    """A new head (trained, or a served adapter's) stays float32 in a lower-precision base: cast its inputs to
    float32, keep its float32 output."""
    head.to(torch.float32)

    def cast_inputs(module: nn.Module, args: tuple) -> tuple:
        return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)

    head.register_forward_pre_hook(cast_inputs)


def enable_checkpointing(model: nn.Module) -> None:
    """transformers' own activation checkpointing, non-reentrant.

    Non-reentrant checkpointing back-propagates into a recomputed block whether or not the block's inputs require
    grad, so no method needs ``enable_input_require_grads`` (the reentrant variant would, for methods whose
    parameters all sit inside the blocks: LoRA, IA3, adapters, ...).
    """
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise UsageError(
            f"--gradient-checkpointing is invalid for {type(model).__name__}: transformers does not support "
            "activation checkpointing for this model class."
        )
    kwargs = {"use_reentrant": False}
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.2x; the old name warns
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "use_cache"):
        config.use_cache = False  # the cache is recomputed away; saves transformers' warning at every step


def check_trainable_dtype(model: nn.Module, loading: BaseLoading, method: str) -> None:
    """Refuse a method that would train tensors in the base's lower precision (it trains the base's own tensors or
    creates its parameters like them); the adapter and its optimiser state must stay float32."""
    if not loading.converts:
        return
    wrong = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad} - {"float32"})
    if wrong:
        raise UsageError(
            f"--method {method} with --dtype {loading.dtype} --quantize {loading.quantize}: the method would train "
            f"{', '.join(wrong)} parameters (it trains the base's own tensors or makes its parameters like them). "
            "Train it with a float32 base, or use --mixed-precision bf16 for lower-precision compute."
        )
