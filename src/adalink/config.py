"""Configuration of AdaLink (Wang et al., "Non-intrusive adaptation", §3.2).

An AdaLink adapts the output ``E`` of a module at the input boundary of a frozen model:
``E' = E + f(dropout(E) · W_down) · W_up`` with ``W_down`` (d×r) and ``W_up`` (r×d, zero-initialised).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = ["INPUT_EMBEDDINGS", "AdaLinkConfig", "ConfigError"]

# The modality path that means "whatever ``model.get_input_embeddings()`` returns".
INPUT_EMBEDDINGS = "input_embeddings"

_ACTIVATIONS = ("gelu", "relu", "silu", "tanh")
_INITS = ("kaiming_uniform", "xavier_uniform", "normal", "orthogonal")
_SIDES = ("encoder", "decoder", "both")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field, the value and what was expected."""


def _bad(field_name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"AdaLinkConfig.{field_name}={value!r} is invalid: expected {expected}.")


@dataclass
class AdaLinkConfig:
    """What to adapt and how. JSON round-trips through :meth:`to_dict` / :meth:`from_dict`."""

    rank: int = 4  # r, the bottleneck width; parameters per AdaLink = 2·d·r (§3.2)
    dropout: float = 0.1  # on the AdaLink input during training (paper §4.2 default)
    activation: str | None = None  # f; None = identity, the paper's final form (foldable, §3.2)
    init: str = "kaiming_uniform"  # initialisation of W_down; W_up is always zeros so training starts at the base
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one AdaLink per task (multi-task AdaLink)
    # modality name -> dotted path of the module whose OUTPUT is adapted; "input_embeddings" = get_input_embeddings()
    modalities: dict[str, str] = field(default_factory=lambda: {"text": INPUT_EMBEDDINGS})
    unified: bool = False  # one AdaLink shared by all modalities (paper Table 3 ablation)
    sides: Literal["encoder", "decoder", "both"] = "encoder"  # encoder-decoder models: whose token inputs are adapted
    # base-model modules trained and saved with the adapter, e.g. a new classification head (peft's name)
    modules_to_save: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tasks = list(self.tasks)
        self.modalities = dict(self.modalities)
        self.modules_to_save = list(self.modules_to_save)
        self._validate()

    def _validate(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank <= 0:
            raise _bad("rank", self.rank, "a positive integer")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise _bad("dropout", self.dropout, "a number in [0, 1)")
        if self.activation is not None and self.activation not in _ACTIVATIONS:
            raise _bad("activation", self.activation, f"None (identity) or one of {list(_ACTIVATIONS)}")
        if self.init not in _INITS:
            raise _bad("init", self.init, f"one of {list(_INITS)}")
        if not self.tasks or not all(isinstance(t, str) and t.strip() for t in self.tasks):
            raise _bad("tasks", self.tasks, "a non-empty list of non-empty task names")
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if duplicates:
            raise _bad("tasks", self.tasks, f"unique task names (duplicated: {duplicates})")
        if not self.modalities:
            raise _bad("modalities", self.modalities, "at least one modality name -> module path")
        for name, path in self.modalities.items():
            if not (isinstance(name, str) and name and isinstance(path, str) and path):
                raise _bad("modalities", self.modalities, "non-empty string names mapped to non-empty module paths")
        paths = list(self.modalities.values())
        if len(set(paths)) != len(paths):
            raise _bad("modalities", self.modalities, "each module path adapted by one modality only")
        if not isinstance(self.unified, bool):
            raise _bad("unified", self.unified, "True or False")
        if self.sides not in _SIDES:
            raise _bad("sides", self.sides, f"one of {list(_SIDES)}")
        if not all(isinstance(m, str) and m for m in self.modules_to_save):
            raise _bad("modules_to_save", self.modules_to_save, "a list of dotted module paths")

    @property
    def is_foldable(self) -> bool:
        """Folding into a weight is exact only for the identity activation (paper §3.3, configurable serving)."""
        return self.activation is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdaLinkConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"AdaLinkConfig got unknown fields {unknown}; known fields are {sorted(known)}.")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
