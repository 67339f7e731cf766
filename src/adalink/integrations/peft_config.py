"""AdaLink's Hugging Face peft config: the fields of :class:`~adalink.methods.adalink.AdaLinkConfig`, in peft's shape.

``peft.get_peft_model(model, AdaLinkPeftConfig(rank=8, task_type="CAUSAL_LM"))`` attaches the same AdaLink as
``adalink.get_peft_model(model, AdaLinkConfig(rank=8))`` (Wang et al., §3.2: ``E' = E + f(dropout(E)·W_down)·W_up``).
One peft adapter holds one link per modality; several tasks are several named adapters (peft's ``add_adapter``,
``adapter_names=[...]`` per example), where adalink's own config lists ``tasks``. Validation is adalink's: a bad value
raises :class:`~adalink.ConfigError` naming ``AdaLinkPeftConfig.<field>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from peft import PeftConfig
from peft.utils import PeftType

from ..errors import ConfigError
from ..methods.adalink import AdaLinkConfig
from .peft_registration import PEFT_TYPE, register

__all__ = ["AdaLinkPeftConfig", "task_type_for"]

# class-name endings of transformers heads -> the peft task_type whose wrapper handles them
_TASK_TYPES = (
    ("ForSequenceClassification", "SEQ_CLS"),
    ("ForTokenClassification", "TOKEN_CLS"),
    ("ForQuestionAnswering", "QUESTION_ANS"),
    ("ForCausalLM", "CAUSAL_LM"),
    ("LMHeadModel", "CAUSAL_LM"),
)
# task types whose model has a new, randomly initialised head that must be trained and saved with the adapter
HEAD_TASK_TYPES = ("SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS")
_DEFAULTS = AdaLinkConfig()  # the one source of AdaLink's defaults; this config repeats none of them


@dataclass
class AdaLinkPeftConfig(PeftConfig):
    """AdaLink as a peft method. ``to_adalink_config()`` is the equivalent adalink config (one task)."""

    rank: int = field(default=_DEFAULTS.rank, metadata={"help": "bottleneck r; 2·d·r parameters per modality (§3.2)"})
    dropout: float = field(default=_DEFAULTS.dropout, metadata={"help": "dropout on the link's input only (§4.2)"})
    activation: str | None = field(default=_DEFAULTS.activation, metadata={"help": "f; None = identity (foldable)"})
    init: str = field(default=_DEFAULTS.init, metadata={"help": "init of W_down; W_up is zeros"})
    modalities: dict[str, str] = field(
        default_factory=lambda: dict(_DEFAULTS.modalities),
        metadata={"help": "modality -> dotted path of the module whose output is adapted"},
    )
    unified: bool = field(default=_DEFAULTS.unified, metadata={"help": "one link shared by every modality"})
    sides: str = field(default=_DEFAULTS.sides, metadata={"help": "encoder-decoder models: encoder, decoder or both"})
    boundaries: list[str] = field(
        default_factory=lambda: list(_DEFAULTS.boundaries),
        metadata={"help": "where links sit: 'input' (after the embeddings), 'output' (on the LM head's input)"},
    )
    modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "base modules trained and saved with the adapter (e.g. a new head)"}
    )
    # read by TRL when it adds tokens; AdaLink cannot train new token rows, so only None is accepted
    trainable_token_indices: list[int] | dict[str, list[int]] | None = field(default=None)
    base_model_fingerprint: dict[str, Any] | None = field(
        default=None, metadata={"help": "adalink's fingerprint of the base, written on save, checked on load"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        register()  # a config made before peft learnt of AdaLink (this module imported peft first)
        self.peft_type = PeftType(PEFT_TYPE)
        self.to_adalink_config()  # validates every AdaLink field
        if self.trainable_token_indices is not None:
            raise ConfigError(
                f"AdaLinkPeftConfig.trainable_token_indices={self.trainable_token_indices!r} is invalid: expected "
                "None; AdaLink adapts the embedding outputs and cannot train new token rows (with TRL, give the "
                "tokenizer a chat template so that no tokens are added)."
            )

    def to_adalink_config(self, tasks: list[str] | None = None) -> AdaLinkConfig:
        """The same AdaLink as adalink's own config (``modules_to_save`` stays with peft's wrappers)."""
        try:
            return AdaLinkConfig(
                rank=self.rank,
                dropout=self.dropout,
                activation=self.activation,
                init=self.init,
                tasks=list(tasks or ["default"]),
                modalities=dict(self.modalities),
                unified=self.unified,
                sides=self.sides,  # type: ignore[arg-type]  # validated by AdaLinkConfig
                boundaries=list(self.boundaries),
            )
        except ConfigError as err:
            raise ConfigError(str(err).replace("AdaLinkConfig.", "AdaLinkPeftConfig.", 1)) from None

    @classmethod
    def from_adalink_config(cls, config: AdaLinkConfig, **peft_fields: Any) -> AdaLinkPeftConfig:
        """The peft config of one task of ``config`` (``peft_fields``: e.g. ``task_type``)."""
        return cls(
            rank=config.rank,
            dropout=config.dropout,
            activation=config.activation,
            init=config.init,
            modalities=dict(config.modalities),
            unified=config.unified,
            sides=config.sides,
            boundaries=list(config.boundaries),
            modules_to_save=list(config.modules_to_save) or None,
            **peft_fields,
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str, subfolder: str | None = None, **kwargs: Any
    ) -> PeftConfig:
        """peft's loader; ``ignore_fingerprint=True`` (also to ``peft.PeftModel.from_pretrained``) skips the check
        that the base model is the one the adapter was saved for."""
        ignore = kwargs.pop("ignore_fingerprint", False)
        config = super().from_pretrained(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        if ignore and isinstance(config, AdaLinkPeftConfig):
            config.base_model_fingerprint = None
        return config

    def layout(self) -> tuple[Any, ...]:
        """What adapters on one model must share: the modules adapted and how."""
        return (sorted(self.modalities.items()), self.unified, self.sides, sorted(self.boundaries))


def task_type_for(architecture: str) -> str | None:
    """The peft ``task_type`` for a transformers model class name (``None`` where it cannot be told)."""
    for ending, task_type in _TASK_TYPES:
        if architecture.endswith(ending):
            return task_type
    encoder_decoders = ("T5", "MT5", "Bart", "Pegasus", "Marian")
    if architecture.startswith(encoder_decoders) and architecture.endswith("ForConditionalGeneration"):
        return "SEQ_2_SEQ_LM"
    return None


register()  # this module may have been the first to import peft; see peft_registration
