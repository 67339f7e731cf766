"""Sharded training through accelerate's FSDP2: what the training loop needs beyond data-parallel (DDP) runs.

Launch with the repository's config: ``accelerate launch --config_file configs/accelerate/fsdp.yaml -m adalink train
...`` (``docs/scaling.md``). FSDP2 (``torch.distributed.fsdp.fully_shard``) shards every parameter, frozen base and
adapter alike, over the processes; each forward pass gathers a block's weights and frees them again, and gradients are
reduce-scattered, so each process holds ``1 / N`` of the weights, gradients and optimiser state.

Four things differ from DDP, and this module does them:

- accelerate (1.x) shards only on accelerators: on a machine without one it would silently fall back to DDP. Where
  FSDP is asked for on CPU (the tests, over gloo), :func:`enable_fsdp_on_cpu` sets accelerate's state to FSDP, so the
  same FSDP2 code path runs there as on GPUs.
- A parameter is a ``DTensor`` holding this process's shard: :func:`full_trainable` gathers the trainable ones (a
  collective: every process calls it) for checkpoints and the saved adapter.
- The optimiser state is sharded like the parameters: :func:`full_optimizer_state` gathers it whole, keyed by
  parameter name, for checkpoints (so ``--resume`` works, on FSDP or not), and :func:`load_full_optimizer_state` puts
  such a state back into the sharded optimiser, each process taking its shard.
- A forward pass is a collective too, so the main process cannot evaluate the sharded model alone: the loop rebuilds
  an unsharded copy there once and loads the gathered weights into it for every evaluation (``--eval-every`` and the
  final one; :func:`is_sharded` tells it when).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..errors import UsageError
from ..models.options import ModelOptions

__all__ = [
    "check_sharded_run",
    "enable_fsdp_on_cpu",
    "fsdp_requested",
    "full_optimizer_state",
    "full_trainable",
    "is_sharded",
    "load_full_optimizer_state",
    "optimizer_order",
]


def fsdp_requested() -> bool:
    """Whether ``accelerate launch`` was asked for FSDP (``--use_fsdp`` or a config with ``distributed_type: FSDP``)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def is_sharded(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def enable_fsdp_on_cpu(accelerator: Any) -> None:
    """On a machine without CUDA, run the FSDP that was asked for (accelerate would fall back to DDP).

    Raises:
        ValueError: FSDP1 was asked for: only FSDP2 runs over gloo on CPU.
    """
    if not fsdp_requested() or torch.cuda.is_available() or accelerator.num_processes < 2 or is_sharded(accelerator):
        return
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* environment
    if plugin.fsdp_version != 2:
        raise UsageError(
            f"FSDP version {plugin.fsdp_version} on CPU: only FSDP2 (fsdp_version: 2, torch's fully_shard) runs over "
            "gloo; use configs/accelerate/fsdp.yaml."
        )
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    PartialState().distributed_type = DistributedType.FSDP  # as accelerate does on GPUs: a later state reads it there


def check_sharded_run(base: ModelOptions, accelerator: Any) -> None:
    """Refuse what a sharded run does not support yet, naming the option.

    Raises:
        ValueError: With ``--quantize`` (FSDP2 cannot shard torchao's or bitsandbytes' packed weights here).
    """
    if not is_sharded(accelerator):
        return
    if base.quantize != "none":
        raise UsageError(
            f"--quantize {base.quantize} is not supported with FSDP (sharded) training yet; use DDP "
            "(configs/accelerate/ddp.yaml) or drop it. See docs/scaling.md."
        )
    version = accelerator.state.fsdp_plugin.fsdp_version
    accelerator.print(f"Sharded training: FSDP{version} over {accelerator.num_processes} processes.")


def full_trainable(accelerator: Any, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the (prepared) model's trainable parameters, by name, whole: a sharded one is gathered from every
    process. Every process must call it (in a sharded run it is a collective); each gets the same tensors."""
    from torch.distributed.tensor import DTensor

    tensors = {}
    for name, param in accelerator.unwrap_model(model).named_parameters():
        if param.requires_grad:
            whole = param.full_tensor() if isinstance(param, DTensor) else param
            tensors[name] = whole.detach().to("cpu", copy=True)
    return tensors


def optimizer_order(model: torch.nn.Module, optimizer: Any) -> list[str]:
    """The names of the optimiser's parameters, in its order (the order of ``Optimizer.state_dict()``'s indices)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in _torch_optimizer(optimizer).param_groups for p in group["params"]]


def full_optimizer_state(accelerator: Any, model: torch.nn.Module, optimizer: Any) -> dict:
    """The whole optimiser state of a sharded run, keyed by parameter name, on the main process (the others get an
    empty dict). A collective: every process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(accelerator.unwrap_model(model), _torch_optimizer(optimizer), options=options)


def load_full_optimizer_state(accelerator: Any, model: torch.nn.Module, optimizer: Any, state: dict) -> None:
    """Put a whole optimiser state keyed by parameter name (every process has it) into the sharded optimiser: each
    process keeps its shard. A collective: every process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(accelerator.unwrap_model(model), _torch_optimizer(optimizer), state, options=options)


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps torch's
