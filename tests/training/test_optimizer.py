"""The optimiser: the new head in its own ``--head-lr`` group, for every method."""

import pytest
import torch

from adalink import get_peft_model
from adalink.tasks.formats import ClassificationFormat, TaskInfo
from adalink.training.args import OptimOptions, TrainArgs
from adalink.training.methods import method_names, resolve_method_config
from adalink.training.optimizer import build_optimizer, head_parameter_ids
from tiny_models import build


def test_head_lr_puts_the_head_in_its_own_group():
    body, head = torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
    params = [*body.parameters(), *head.parameters()]
    head_ids = {id(p) for p in head.parameters()}
    together = build_optimizer(OptimOptions(), params, head_ids, lr=1e-3)
    assert [g["lr"] for g in together.param_groups] == [1e-3]
    apart = build_optimizer(OptimOptions(head_lr=1e-2), params, head_ids, lr=1e-3)
    assert [(g["lr"], len(g["params"])) for g in apart.param_groups] == [(1e-3, 2), (1e-2, 2)]
    with pytest.raises(ValueError, match="--head-lr"):
        TrainArgs(head_lr=0).validate()


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_the_new_head_at_head_lr(method):
    """The optimiser ``adalink train`` builds puts exactly the new classifier in the --head-lr group, full tuning
    included (its plain model's ``base_model`` is the backbone, which once hid the head: it trained at 5e-5)."""
    fmt = ClassificationFormat([TaskInfo("t", ("a", "b", "c"))])
    base = build("bert")
    config = resolve_method_config(method, rank=None, dropout=None, tasks=["t"], heads=fmt.head_modules(base))
    model = get_peft_model(base, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    head_ids = head_parameter_ids(model, fmt)
    assert head_ids == {id(p) for p in base.classifier.parameters()}
    optimizer = build_optimizer(OptimOptions(head_lr=1e-2), trainable, head_ids, lr=1e-3)
    (head_group,) = [g for g in optimizer.param_groups if g["lr"] == 1e-2]
    assert {id(p) for p in head_group["params"]} == head_ids
    (body_group,) = [g for g in optimizer.param_groups if g["lr"] == 1e-3]
    assert body_group["params"] and not {id(p) for p in body_group["params"]} & head_ids
