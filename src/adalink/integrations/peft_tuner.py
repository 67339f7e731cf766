"""AdaLink's peft tuner: peft's ``BaseTuner`` contract over adalink's AdaLink core (sites, bank, hooks, folding,
fingerprint), so that ``peft.get_peft_model``, ``PeftModel.from_pretrained``, ``add_adapter`` / ``set_adapter``,
``disable_adapter``, ``merge_and_unload`` and ``adapter_names=[...]`` work as for peft's own methods.

Where peft's LoRA replaces target modules by wrapper layers, AdaLink stays non-intrusive (paper §3.2): adalink's own
``AdaLinkConfig.attach`` builds each adapter's banks (the same initialisation, the same random draws as
``adalink.get_peft_model``) and its fold, and one forward hook per adapted module (adalink's ``hook_site``) calls an
:class:`~adalink.integrations.peft_layer.AdaLinkLayer` that routes between the named adapters. The layers live on the
tuner, so the base model's modules and their names are untouched; ``unload()`` removes the hooks.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTuner, set_adapter
from peft.utils.other import AuxiliaryTrainingWrapper, set_additional_trainable_modules
from torch import nn

from ..errors import ConfigError, FoldError, UsageError
from ..fingerprint import FingerprintMismatchError, base_fingerprint, check_fingerprint
from ..methods.adalink.hooks import hook_site
from ..methods.adalink.sites import OUTPUT, UNIFIED, Site, bank_key, resolve_sites
from ..methods.base import Attachment, Handle
from ..routing import Router
from .peft_config import HEAD_TASK_TYPES, AdaLinkPeftConfig, task_type_for
from .peft_layer import BASE_ADAPTER, AdaLinkLayer
from .peft_registration import PREFIX, register

__all__ = ["AdaLinkTuner"]


class AdaLinkTuner(BaseTuner):
    """``peft.PeftModel(...).base_model`` for AdaLink adapters. ``adalink[modality]`` holds each modality's layer."""

    prefix: str = PREFIX
    tuner_layer_cls = AdaLinkLayer
    target_module_mapping: dict[str, list[str]] = {}  # noqa: RUF012 - peft's class attribute
    uses_shared_state = True  # the banks live on the tuner: peft's inject_adapter_in_model cannot hold them

    # ---------------------------------------------------------------------------------------------- injection
    def _pre_injection_hook(self, model: nn.Module, config: Any, adapter_name: str) -> None:
        self.adalink = nn.ModuleDict()  # modality (or "unified"), and "output" -> AdaLinkLayer
        self._router = Router([BASE_ADAPTER])  # adapter names in order, then the base
        self._handles: list[Handle] = []
        self._sites: list[Site] = []
        self._attachments: dict[str, Attachment] = {}
        self._fingerprint: dict[str, Any] | None = None
        self._merged: str | None = None
        self._unfold: list[tuple[nn.Module, str, Any]] = []

    def inject_adapter(
        self,
        model: nn.Module,
        adapter_name: str,
        autocast_adapter_dtype: bool = True,
        low_cpu_mem_usage: bool = False,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Attach adapter ``adapter_name`` (its config is ``self.peft_config[adapter_name]``) to ``model``."""
        config = self._check_new_adapter(model, self.peft_config[adapter_name], adapter_name)
        adalink_config = config.to_adalink_config([adapter_name])
        attachment = adalink_config.attach(model, Router([adapter_name]))
        for handle in attachment.handles:
            handle.remove()  # the tuner's one hook per site routes between the named adapters instead
        if not self._sites:
            self._fingerprint = base_fingerprint(model, attachment.touched)
        self._check_fingerprint(model, config, adapter_name)
        banks = attachment.modules
        assert isinstance(banks, nn.ModuleDict)  # AdaLinkConfig.attach: bank_key -> AdaLinkBank
        if not self._sites:
            self._hook_sites(model, adalink_config, list(banks))
        device = next(self._sites[0].module.parameters()).device
        layers = dict(zip(self.adalink.keys(), self._layers(), strict=True))
        for key, bank in banks.items():
            layers[key].adalink_bank[adapter_name] = bank.to(device)
        self._router.tasks.insert(len(self._router.tasks) - 1, adapter_name)
        self._attachments[adapter_name] = attachment
        # what peft's own inject_adapter does last: activate, freeze the base, add modules_to_save wrappers
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)
        self._mark_only_adapters_as_trainable(model)
        set_additional_trainable_modules(
            model=model,
            peft_config=config,
            model_config=BaseTuner.get_model_config(self),
            adapter_name=adapter_name,
            activate_adapter=adapter_name in self.active_adapters,
        )

    def _hook_sites(self, model: nn.Module, adalink_config: Any, keys: list[str]) -> None:
        self._sites = resolve_sites(model, adalink_config)
        for key in keys:
            self.adalink[key] = AdaLinkLayer(self._router)
        for site in self._sites:
            self._handles += hook_site(site, self.adalink[bank_key(site, adalink_config.unified)], self._router)

    def _check_new_adapter(self, model: nn.Module, config: Any, name: str) -> AdaLinkPeftConfig:
        if not isinstance(config, AdaLinkPeftConfig):
            raise TypeError(f"AdaLinkTuner takes AdaLinkPeftConfig adapters; {name!r} is a {type(config).__name__}.")
        reserved = {BASE_ADAPTER, UNIFIED, OUTPUT, *config.modalities}
        if name in reserved:
            raise ConfigError(f"Adapter name {name!r} is invalid for AdaLink: expected a name other than {reserved}.")
        first = next(c for c in self.peft_config.values() if isinstance(c, AdaLinkPeftConfig))
        if self._sites and config.layout() != first.layout():
            raise ConfigError(
                f"AdaLinkPeftConfig of adapter {name!r} adapts {config.modalities} (unified={config.unified}, "
                f"sides={config.sides!r}, boundaries={config.boundaries}); the adapters on one model must adapt the "
                f"same modules as the first one: {first.modalities} (unified={first.unified}, sides={first.sides!r}, "
                f"boundaries={first.boundaries})."
            )
        architecture = type(model).__name__
        expected = task_type_for(architecture)
        if config.task_type is None and expected in HEAD_TASK_TYPES and not config.modules_to_save:
            raise ConfigError(
                f"AdaLinkPeftConfig.task_type=None is invalid for {architecture}: expected task_type={expected!r}, "
                "so that peft trains and saves its new head with the adapter (or name the head in modules_to_save)."
            )
        return config

    def _check_fingerprint(self, model: nn.Module, config: AdaLinkPeftConfig, name: str) -> None:
        if config.base_model_fingerprint is None:
            return
        try:
            check_fingerprint(config.base_model_fingerprint, self.base_fingerprint(), f"adapter {name!r}")
        except FingerprintMismatchError as err:
            details = "\n".join(line for line in str(err).splitlines() if line.startswith("  - "))
            raise FingerprintMismatchError(
                f"AdaLink adapter {name!r} was saved for a different base model than this {type(model).__name__}: "
                "load it onto that base, or pass ignore_fingerprint=True to peft.PeftModel.from_pretrained.\n" + details
            ) from None

    def base_fingerprint(self) -> dict[str, Any]:
        """adalink's fingerprint of the base (taken before any adapter changed it), saved in each adapter config."""
        assert self._fingerprint is not None, "no AdaLink adapter injected yet"
        return self._fingerprint

    def _layers(self) -> list[AdaLinkLayer]:
        return [layer for layer in self.adalink.values() if isinstance(layer, AdaLinkLayer)]

    def _create_and_replace(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("AdaLink attaches through forward hooks (inject_adapter); it replaces no module.")

    # ------------------------------------------------------------------------------------------------ switching
    def set_adapter(self, adapter_name: str | list[str], inference_mode: bool = False) -> None:
        """Make one adapter the active one (a mixed batch takes ``adapter_names=[...]`` instead)."""
        names = [adapter_name] if isinstance(adapter_name, str) else list(adapter_name)
        if len(names) > 1:
            raise UsageError(
                f"AdaLink runs one adapter per example, so set_adapter takes one name, got {names}; pass "
                "adapter_names=[one name per example] to forward or generate to mix adapters in a batch."
            )
        if self._merged is not None and names != [self._merged]:
            warnings.warn("Adapter cannot be set when the model is merged. Unmerging the model first.", stacklevel=2)
            self.unmerge_adapter()
        set_adapter(self, adapter_name=names, inference_mode=inference_mode, layer_cls=AdaLinkLayer)
        self.active_adapter = names[0] if names else []
        self._router.set_default(names[0] if names else BASE_ADAPTER)

    def _enable_adapter_layers(self, enabled: bool = True) -> None:
        for module in self.modules():  # the layers live on the tuner, the modules_to_save wrappers in the model
            if isinstance(module, (AdaLinkLayer, AuxiliaryTrainingWrapper)):
                module.enable_adapters(enabled)

    def delete_adapter(self, adapter_name: str) -> None:
        if adapter_name not in self.peft_config:
            raise UsageError(f"Adapter {adapter_name} does not exist")
        if adapter_name == self._merged:
            raise UsageError(f"Cannot delete adapter(s) {[adapter_name]} while they are merged. Unmerge them first.")
        del self.peft_config[adapter_name]
        for layer in self._layers():
            layer.delete_adapter(adapter_name)  # peft's rule picks the next active adapter
        self._router.tasks.remove(adapter_name)
        del self._attachments[adapter_name]
        active: list[str] = self._layers()[0].active_adapters
        for module in self.model.modules():
            if isinstance(module, AuxiliaryTrainingWrapper):
                module.delete_adapter(adapter_name, new_active_adapters=active or None)
        self.active_adapter = active[0] if active else []
        self._router.set_default(active[0] if active else BASE_ADAPTER)

    @contextlib.contextmanager
    def _enable_peft_forward_hooks(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        """peft's mixed batch: ``adapter_names`` (one per example, ``"__base__"`` for the base) routed in one pass."""
        names = kwargs.pop("adapter_names", None)
        if names is None:
            yield
            return
        self._check_mixed_batch(list(names), args, kwargs)
        device = next(iter(self.adalink.parameters())).device
        with self._router.route(list(names), None, device):
            yield

    def _check_mixed_batch(self, names: list[str], args: tuple, kwargs: dict) -> None:
        if self.training:
            raise UsageError("adapter_names= (a mixed batch) is for inference: call model.eval() first.")
        if self._merged is not None:
            raise UsageError(
                f"adapter_names= cannot be used while adapter {self._merged!r} is merged into the base weights: call "
                "model.unmerge_adapter() first (or merge_and_unload() and serve that adapter alone)."
            )
        unknown = sorted(set(names) - set(self._router.tasks))
        if unknown:
            raise UsageError(
                f"adapter_names has unknown adapters {unknown}: expected names of {list(self.peft_config)} or "
                f"{BASE_ADAPTER!r} (the base model)."
            )
        for value in (*args[:1], kwargs.get("input_ids"), kwargs.get("inputs_embeds")):
            if isinstance(value, torch.Tensor) and value.dim() > 1 and value.shape[0] != len(names):
                raise UsageError(f"adapter_names has {len(names)} entries but the batch has {value.shape[0]} examples.")

    # ------------------------------------------------------------------------------------------------- folding
    def merge_adapter(self, adapter_names: list[str] | None = None, safe_merge: bool = False) -> None:
        """Fold one adapter into the adapted modules' weights (``E (I + W_down·W_up)``, §3.3); reversible."""
        names = list(adapter_names or self.active_adapters)
        if len(names) != 1:
            raise FoldError(f"AdaLink folds one adapter at a time into the embedding table: got {names}.")
        if self._merged == names[0]:
            return
        if self._merged is not None:
            raise FoldError(f"Adapter {self._merged!r} is merged already: call unmerge_adapter() first.")
        banks = [layer.adalink_bank[names[0]] for layer in self._layers() if names[0] in layer.adalink_bank]
        if safe_merge and not all(torch.isfinite(p).all() for bank in banks for p in bank.parameters()):
            raise FoldError(f"Adapter {names[0]!r} holds NaN or infinite weights: it was not merged.")
        merge = self._attachments[names[0]].merge
        assert merge is not None  # AdaLinkConfig.attach always gives one; it refuses non-linear links itself
        self._unfold = [(s.module, n, getattr(s.module, n, None)) for s in self._sites for n in ("weight", "bias")]
        merge(0)
        self._merged = names[0]
        for layer in self._layers():
            layer.merged_adapters = [names[0]]

    def unmerge_adapter(self) -> None:
        """Put back the weights the fold replaced (the very same tensors: the base bit for bit)."""
        for module, name, value in reversed(self._unfold):
            if isinstance(value, nn.Parameter):
                setattr(module, name, value)
        self._unfold, self._merged = [], None
        for layer in self._layers():
            layer.merged_adapters = []

    def _unload_and_optionally_merge(
        self,
        merge: bool = True,
        progressbar: bool = False,
        safe_merge: bool = False,
        adapter_names: list[str] | None = None,
    ) -> Any:  # the base model (peft annotates None)
        if merge:
            self.merge_adapter(adapter_names, safe_merge=safe_merge)
        elif self._merged is not None:
            self.unmerge_adapter()
        for handle in reversed(self._handles):
            handle.remove()
        self._handles, self._unfold = [], []
        return super()._unload_and_optionally_merge(merge, progressbar, safe_merge, adapter_names)

    # ---------------------------------------------------------------------------------------------- saving
    @classmethod
    def _get_adapter_state_dict(
        cls,
        model: nn.Module,
        config: Any,
        adapter_name: str,
        state_dict: dict[str, torch.Tensor],
        unwanted_adapter_names: list[str],
    ) -> dict[str, torch.Tensor]:
        tuner = getattr(model, "base_model", None)
        if isinstance(tuner, AdaLinkTuner) and config.base_model_fingerprint is None:
            config.base_model_fingerprint = tuner.base_fingerprint()  # peft writes the config right after this
        return super()._get_adapter_state_dict(model, config, adapter_name, state_dict, unwanted_adapter_names)


register()  # this module may have been the first to import peft; see peft_registration
