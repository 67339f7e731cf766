"""Register AdaLink as a Hugging Face peft method (``peft_type="ADALINK"``) once peft is imported.

peft 0.21 lets a package register a method with ``peft.utils.register_peft_method``, but only for a name that is a
member of its ``PeftType`` enum, and it offers no entry point for plugins. So :func:`register` adds the one member
``ADALINK`` to that enum (the least invasive way; kept here, in one function) and then registers
:class:`~adalink.integrations.peft_config.AdaLinkPeftConfig` and
:class:`~adalink.integrations.peft_tuner.AdaLinkTuner` through peft's own function.
``tests/integrations/test_peft_registration.py`` fails loudly if a peft upgrade breaks either step.

Importing peft takes seconds, so ``import adalink`` does not import it: :func:`register_when_peft_imported`
registers at once if peft is already imported and otherwise waits, through an import hook, until it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["PEFT_TYPE", "PREFIX", "is_registered", "register", "register_when_peft_imported"]

PEFT_TYPE = "ADALINK"  # peft_type in adapter_config.json
PREFIX = "adalink_"  # peft's per-method prefix; the adapter weights are named adalink_bank


def register() -> None:
    """Make ``peft.get_peft_model`` / ``peft.PeftModel.from_pretrained`` take AdaLink (safe to call twice)."""
    from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
    from peft.utils import PeftType, register_peft_method

    # by name: the config and tuner modules call register() themselves, so a static import would be a circle
    tuner = getattr(importlib.import_module(f"{__package__}.peft_tuner"), "AdaLinkTuner", None)
    config = getattr(importlib.import_module(f"{__package__}.peft_config"), "AdaLinkPeftConfig", None)
    if tuner is None or config is None:
        return  # called in the middle of importing them: the outer one calls register() again when it is done
    if PEFT_TYPE in PeftType.__members__ and PEFT_TYPE_TO_TUNER_MAPPING.get(PeftType[PEFT_TYPE]) is tuner:
        return
    _add_enum_member(PeftType, PEFT_TYPE)
    register_peft_method(name=PEFT_TYPE.lower(), config_cls=config, model_cls=tuner, prefix=PREFIX)


def is_registered() -> bool:
    """Whether peft (if imported) knows AdaLink."""
    mapping = sys.modules.get("peft.mapping")
    return mapping is not None and PEFT_TYPE in getattr(mapping, "PEFT_TYPE_TO_TUNER_MAPPING", {})


def _add_enum_member(enum_cls: Any, name: str) -> None:
    """Add ``name`` (value ``name``) to a ``str`` enum, as if it had been declared in the class body."""
    if name in enum_cls.__members__:
        return
    member = str.__new__(enum_cls, name)
    member._name_, member._value_, member.__objclass__ = name, name, enum_cls
    member._sort_order_ = len(enum_cls._member_names_)
    enum_cls._member_names_.append(name)
    enum_cls._member_map_[name] = member
    enum_cls._value2member_map_[name] = member
    type.__setattr__(enum_cls, name, member)  # PeftType.ADALINK


def _ours_importing() -> bool:
    """Whether one of this package's peft modules is being imported (it imported peft): it registers when done."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if name.startswith(f"{__package__}.peft_")
    )


def _register_or_warn() -> None:
    if _ours_importing():
        return
    try:
        register()
    except Exception as err:  # a peft API change must not break `import peft` for everyone
        version = getattr(sys.modules.get("peft"), "__version__", "?")
        warnings.warn(
            f"adalink could not register AdaLink as a peft method with peft {version} ({type(err).__name__}: {err}); "
            "peft.get_peft_model will not take AdaLinkPeftConfig, adalink.get_peft_model still works.",
            RuntimeWarning,
            stacklevel=2,
        )


def register_when_peft_imported() -> None:
    """Register now if peft is imported, else as soon as it is (an import hook; peft is not imported here)."""
    peft = sys.modules.get("peft")
    if peft is not None and getattr(peft, "__spec__", None) is not None and hasattr(peft, "PeftModel"):
        _register_or_warn()
    elif not any(isinstance(finder, _PeftImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PeftImportHook())


class _PeftImportHook(importlib.abc.MetaPathFinder):
    """Finds peft with the other finders, then registers AdaLink right after peft's ``__init__`` has run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "peft":
            return None
        sys.meta_path.remove(self)  # once: later imports of peft are plain
        spec = importlib.util.find_spec("peft")
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register_or_warn()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ... of the real loader
        return getattr(self._loader, name)
