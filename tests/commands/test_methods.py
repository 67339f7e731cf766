"""`adalink methods`: every registered method with its own trainable parameters on a model."""

import json

from adalink import METHOD_CONFIGS, AdaLinkConfig, get_peft_model
from adalink.cli import main
from adalink.commands.methods import describe_methods
from tiny_models import tiny_bert

D, LAYERS, FFN = 32, 2, 64  # tiny BERT: hidden size, layers, feed-forward width (3 labels, 96 tokens)


def _bottleneck(m: int) -> int:
    """One bottleneck adapter d -> m -> d with biases."""
    return D * m + m + m * D + D


def _prefix(tokens: int, hidden: int) -> int:
    """Prefix tuning while training: the embedding P' (n x d) and the MLP d -> hidden -> L * 2 * d (Li & Liang §4.3)."""
    return tokens * D + (D * hidden + hidden) + (hidden * LAYERS * 2 * D + LAYERS * 2 * D)


def _phm_adapter(m: int = 4, n: int = 4) -> int:
    """One Compacter adapter d -> m -> d: each PHM layer's n rank-1 factors B_i = s_i t_i^T, plus its bias."""
    return n * (D // n + m // n) + m + n * (m // n + D // n) + D


# Each method's own trainable parameters on tiny BERT with its default config, from its definition.
EXPECTED = {
    "adalink": 2 * D * 8,  # W_down (d x r) and W_up (r x d), r = 8
    "lora": LAYERS * 2 * (2 * 8 * D),  # q and v: A (r x d) + B (d x r), r = 8
    "lora_all": LAYERS * (4 * 2 * 8 * D + 2 * (8 * D + FFN * 8)),  # q, k, v, o, and both feed-forward layers
    "dora": LAYERS * 2 * (2 * 8 * D + D),  # LoRA (q, v) plus a magnitude per output row
    "ia3": LAYERS * (D + D + FFN),  # k, v and the feed-forward output layer's input
    "ln_tuning": (1 + 2 * LAYERS) * 2 * D,  # every LayerNorm's weight and bias
    "bitfit": LAYERS * (4 * D + FFN + D + 2 * D) + D + D + 3,  # every bias: layers, embedding norm, pooler, head
    "prompt_tuning": 20 * D,  # 20 soft tokens
    "krona": LAYERS * 2 * (4 * 4 + 8 * 8),  # q and v: 32 x 32 = (4 x 4) (x) (8 x 8), near-square factors
    "houlsby": LAYERS * 2 * _bottleneck(D // 16),  # after attention and after the feed-forward block
    "pfeiffer": LAYERS * _bottleneck(D // 16),  # after the feed-forward block only
    "parallel": LAYERS * _bottleneck(D // 2),  # beside the feed-forward block, reduction factor 2
    "prefix_tuning": _prefix(20, 512),
    "mam": _prefix(30, 800) + LAYERS * _bottleneck(D // 2),  # prefix + parallel adapter
    "unipelt": _prefix(10, 512) + LAYERS * (2 * 2 * 8 * D + _bottleneck(D // 16) + 4 * (D + 1)),  # + 4 gates
    "compacter": LAYERS * 2 * _phm_adapter() + 4**3,  # Houlsby placement; m = 32 / 32 rounded up to n = 4
    "compacter_pp": LAYERS * _phm_adapter() + 4**3,  # Pfeiffer placement; the n x n x n rules A_i are shared
    "full": sum(p.numel() for p in tiny_bert().parameters()),
}


def test_every_method_is_listed_with_its_own_trainable_parameters():
    rows = {row.name: row for row in describe_methods(tiny_bert)}
    assert set(rows) == set(METHOD_CONFIGS)
    errors = {name: row.error for name, row in rows.items() if row.error or row.trainable is None}
    assert not errors, errors  # every method attaches to a BERT
    assert {name: row.trainable for name, row in rows.items()} == EXPECTED
    expected = get_peft_model(tiny_bert(), AdaLinkConfig()).method_parameter_count()
    assert rows["adalink"].trainable == expected == 2 * 32 * 8  # AdaLinkConfig's own rank, 8
    total = EXPECTED["full"]
    assert all(row.percent == 100.0 * row.trainable / total for row in rows.values())


def test_rank_reaches_methods_with_a_rank(capsys):
    rows = {row.name: row for row in describe_methods(tiny_bert, rank=16)}
    assert rows["adalink"].trainable == 2 * 32 * 16


def test_methods_command_prints_json_for_a_model_directory(tmp_path, capsys):
    tiny_bert().save_pretrained(tmp_path)
    assert main(["methods", "--model", str(tmp_path), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(METHOD_CONFIGS) and not [row for row in rows.values() if row["error"]]
    assert rows["adalink"]["trainable"] == 2 * 32 * 8
    assert rows["adalink"]["defaults"]["rank"] == 8 and rows["houlsby"]["size_field"] == "bottleneck"
    assert rows["lora"]["trainable"] == EXPECTED["lora"] and rows["prompt_tuning"]["trainable"] == 20 * D
