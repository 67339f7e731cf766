"""PEFT methods under one contract (see :mod:`adalink.methods.base`).

Every module in this package defines one method and registers its config with ``@register_method``; importing the
package imports them all, so ``METHOD_CONFIGS`` lists every method without a hand-kept list. The exceptions are the
contract (``base``), the role maps (``roles``), ``activations``, private helpers (``_*``) and :mod:`.shared`, the
pieces several methods build on (no method imports another).
"""

import importlib
import pkgutil

from .base import METHOD_CONFIGS, Attachment, MethodConfig, config_from_dict, register_method

__all__ = ["METHOD_CONFIGS", "Attachment", "MethodConfig", "config_from_dict", "register_method"]

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("activations", "base", "roles", "shared") and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
