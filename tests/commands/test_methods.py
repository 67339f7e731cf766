"""`adalink methods`: every registered method with its own trainable parameters on a model."""

import json

from adalink import METHOD_CONFIGS, AdaLinkConfig, get_peft_model
from adalink.cli import main
from adalink.commands.methods import describe_methods
from tiny_models import tiny_bert


def test_every_method_is_listed_with_its_own_trainable_parameters():
    rows = {row.name: row for row in describe_methods(tiny_bert)}
    assert set(rows) == set(METHOD_CONFIGS)
    for row in rows.values():
        assert row.trainable is not None or row.error, row
    expected = get_peft_model(tiny_bert(), AdaLinkConfig()).method_parameter_count()
    assert rows["adalink"].trainable == expected == 2 * 32 * 4


def test_rank_reaches_methods_with_a_rank(capsys):
    rows = {row.name: row for row in describe_methods(tiny_bert, rank=16)}
    assert rows["adalink"].trainable == 2 * 32 * 16


def test_methods_command_prints_json_for_a_model_directory(tmp_path, capsys):
    tiny_bert().save_pretrained(tmp_path)
    assert main(["methods", "--model", str(tmp_path), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["adalink"]["trainable"] == 2 * 32 * 4
