"""``adalink methods``: every registered method with its trainable parameters on a model.

Counts are taken by attaching each method's default config (what ``adalink train --method NAME`` starts from) to the
model and counting the method's own parameters: the *actual* trainable parameters, as the survey (§12) asks, not
the changed ones. The model is built on the ``meta`` device, so no weights are loaded and nothing is computed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import methods as _methods  # noqa: F401  (registers every method)
from ..errors import AdalinkError
from ..methods.base import METHOD_CONFIGS, MethodConfig
from ..peft_model import get_peft_model

__all__ = ["HELP", "MethodInfo", "add_arguments", "describe_methods", "run"]

HELP = "list every PEFT method with its trainable parameters on a model"


@dataclass
class MethodInfo:
    name: str
    trainable: int | None  # the method's own trainable parameters on the model; None = it cannot attach
    percent: float | None  # of the base model's parameters
    mergeable: bool
    multi_task: bool  # one adapter per task, routed per example inside a batch
    default_lr: float
    source: str
    size_field: str | None  # the field `adalink train --rank` sets (None: --rank is refused)
    defaults: dict[str, Any]  # the config `adalink train --method NAME` starts from (its scalar fields)
    error: str | None = None  # why it cannot attach to this model


def _meta_model(name_or_path: str) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    from ..models import resolve_model

    return AutoModel.from_config(AutoConfig.from_pretrained(resolve_model(name_or_path).path))


def describe_methods(
    model_factory: Callable[[], nn.Module] | None = None, *, rank: int | None = None
) -> list[MethodInfo]:
    """One :class:`MethodInfo` per registered method (plus ``full``), counted on fresh models from ``model_factory``."""
    rows = []
    for name in sorted(METHOD_CONFIGS):
        cls = METHOD_CONFIGS[name]
        sized: dict[str, Any] = {cls.size_field: rank} if rank and cls.size_field else {}
        config = cls(**sized)
        rows.append(_describe(name, cls, config, model_factory))
    return rows


def _describe(
    name: str, cls: type[MethodConfig], config: MethodConfig, model_factory: Callable[[], nn.Module] | None
) -> MethodInfo:
    defaults = {k: v for k, v in cls().to_dict().items() if not isinstance(v, (list, dict))}
    info = MethodInfo(
        name, None, None, cls.mergeable, cls.has_tasks(), cls.default_lr, cls.source, cls.size_field, defaults
    )
    if model_factory is None:
        return info
    with torch.device("meta"):  # count only: the adapters' weights need not exist either
        base = model_factory()
        total = sum(p.numel() for p in base.parameters())
        try:
            model = get_peft_model(base, config)
        except AdalinkError as err:  # ConfigError, RoleError, ...: the method cannot attach to this architecture
            info.error = str(err).splitlines()[0]
            return info
    info.trainable = model.method_parameter_count()
    info.percent = 100.0 * info.trainable / total
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="count trainable parameters on this model (e.g. minilm, a path)")
    parser.add_argument("--rank", type=int, default=None, help="as `adalink train --rank` (default: each method's own)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    factory = (lambda: _meta_model(args.model)) if args.model else None
    rows = describe_methods(factory, rank=args.rank)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    header = f"{'method':<16}{'trainable':>12}{'%':>9}  {'merge':<6}{'tasks':<6}{'lr':>8}  source"
    print(header if args.model else header.replace(f"{'trainable':>12}{'%':>9}", ""))
    for row in rows:
        counts = ""
        if args.model:
            counts = f"{row.trainable:>12,d}{row.percent:>9.4f}" if row.trainable is not None else f"{'n/a':>21}"
        flags = f"{'yes' if row.mergeable else 'no':<6}{'yes' if row.multi_task else 'no':<6}"
        print(f"{row.name:<16}{counts}  {flags}{row.default_lr:>8.0e}  {row.source}")
        knobs = ", ".join(f"{k}={v}" for k, v in row.defaults.items())
        size = f"--rank sets {row.size_field}" if row.size_field else "no --rank"
        print(f"{'':<16}  defaults: {knobs or 'none'} ({size})")
        if row.error:
            print(f"{'':<16}  cannot attach: {row.error}")
    sys.stdout.flush()
    return 0
