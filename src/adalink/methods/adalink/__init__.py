"""AdaLink (Wang et al., "Non-intrusive adaptation: input-centric parameter-efficient fine-tuning", §3).

A low-rank link between a frozen model's embedding layer and its blocks: ``E' = E + f(dropout(E)·W_down)·W_up``.
Read in this order: :mod:`.sites` (where it attaches) -> :mod:`.bank` (the stacked per-task links) -> :mod:`.hooks`
(forward hooks on module outputs) -> :mod:`.folding` (identity-activation links folded into the weights) ->
:mod:`.config` (the dataclass config that attaches it all).
"""

from .bank import AdaLinkBank
from .config import AdaLinkConfig
from .sites import INPUT_EMBEDDINGS

__all__ = ["INPUT_EMBEDDINGS", "AdaLinkBank", "AdaLinkConfig"]
