import pytest
import torch

from adalink import AdaLinkBank


def _bank(**kwargs) -> AdaLinkBank:
    torch.manual_seed(0)
    bank = AdaLinkBank(3, 16, 4, dropout=0.0, **kwargs)
    with torch.no_grad():
        bank.up.normal_()
    return bank


def test_zero_initialised_up_projection_is_identity():
    bank = AdaLinkBank(2, 16, 4)
    x = torch.randn(2, 5, 16)
    assert torch.equal(bank.train()(x, 1), x)
    assert torch.equal(bank(x, torch.tensor([0, 1])), x)


def test_parameter_count_is_two_d_r_per_task():
    bank = AdaLinkBank(3, 16, 4)
    assert sum(p.numel() for p in bank.parameters()) == 3 * 2 * 16 * 4


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_formula_matches_paper(activation):
    bank = _bank(activation=activation).eval()
    x = torch.randn(2, 5, 16)
    h = x @ bank.down[2]
    h = torch.nn.functional.gelu(h) if activation else h
    torch.testing.assert_close(bank(x, 2), x + h @ bank.up[2])


def test_mixed_tasks_equal_each_example_alone():
    bank = _bank().eval()
    x = torch.randn(4, 5, 16)
    ids = torch.tensor([2, 0, 1, 2])
    mixed = bank(x, ids)
    for row, task in enumerate(ids.tolist()):
        torch.testing.assert_close(mixed[row], bank(x[row : row + 1], task)[0])


def test_folded_linear_map_reproduces_identity_activation():
    bank = _bank().eval()
    x = torch.randn(3, 16)
    folded = (x.double() @ (torch.eye(16, dtype=torch.float64) + bank.linear_map(1))).float()
    torch.testing.assert_close(folded, bank(x, 1))


def test_dropout_only_touches_the_adalink_branch():
    bank = AdaLinkBank(1, 16, 4, dropout=0.5)  # W_up = 0: whatever dropout does, the frozen path is untouched
    x = torch.randn(8, 16)
    assert torch.equal(bank.train()(x, 0), x)


@pytest.mark.parametrize("task_ids", [0, torch.tensor([0, 0, 0, 0, 0, 0, 0, 0])])
def test_dropout_is_applied_in_training_and_not_in_eval(task_ids):
    """Paper §4.2: dropout 0.1 on the AdaLink input. In training the branch sees ``dropout(E)`` (inverted dropout:
    kept entries scaled by 1/(1-p)); in eval it sees ``E`` and the output is exactly ``E + E·W_down·W_up``."""
    torch.manual_seed(0)
    bank = AdaLinkBank(1, 16, 4, dropout=0.5)
    with torch.no_grad():
        bank.up.normal_()
    x = torch.randn(8, 16)
    down, up = bank.down[0].detach(), bank.up[0].detach()
    exact = x + x @ down @ up
    torch.testing.assert_close(bank.eval()(x, task_ids), exact)
    torch.manual_seed(1)
    trained = bank.train()(x, task_ids)
    torch.manual_seed(1)
    mask = torch.nn.functional.dropout(torch.ones_like(x), p=0.5, training=True)  # the same draw: 0 or 2
    torch.testing.assert_close(trained, x + (x * mask) @ down @ up)
    assert not torch.allclose(trained, exact, atol=1e-3)
    assert {round(v, 4) for v in mask.unique().tolist()} == {0.0, 2.0}


def test_select_tasks_keeps_order():
    bank = _bank()
    down, up = bank.down.detach().clone(), bank.up.detach().clone()
    bank.select_tasks([2, 0])
    assert torch.equal(bank.down, down[[2, 0]]) and torch.equal(bank.up, up[[2, 0]])
