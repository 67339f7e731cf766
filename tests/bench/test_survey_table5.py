"""The survey's Table 5 as transcribed, and the generated sentence that sets our figures beside it."""

import pytest

from adalink.bench.survey_table5 import COLUMNS, SIZES, TABLE5, sentence, spearman, survey_value


def test_table5_rows_and_relative_memory():
    assert SIZES == ("T5-Large", "T5-3B", "T5-11B")
    for size in SIZES:
        assert len(TABLE5[size]) == 15  # 14 methods and full tuning
        full = TABLE5[size]["full"]
        assert (full.params_pct, full.train, full.infer) == (100, 100, 100)
        for row in TABLE5[size].values():  # % of trainable parameters agrees with the millions, to the table's digits
            assert 100 * row.params_m / full.params_m == pytest.approx(row.params_pct, rel=0.05, abs=0.002)
    assert survey_value("T5-Large", "houlsby", "memory_bytes") == pytest.approx(100 * 12.1 / 20.7)
    assert survey_value("T5-11B", "ln_tuning", "train_tps") == 275.9
    assert survey_value("T5-Large", "adalink", "infer_tps") is None


def test_spearman_with_ties():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 4], [1, 3, 2, 4]) == pytest.approx(0.9486833)  # average ranks 1, 2.5, 2.5, 4
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def test_sentence_names_the_methods_on_the_other_side_of_full_tuning():
    memory = next(c for c in COLUMNS if c.key == "memory_bytes")
    # T5-Large: houlsby 58.5, lora 69.1, mam 80.2; all below full tuning there
    ours = {"houlsby": 57.0, "lora": 70.0, "mam": 210.0, "adalink": 50.0, "full": 100.0}
    text = sentence(memory, ours)
    assert text.startswith("2 of 3 methods train in less memory than full tuning here (the survey's Table 5: 3 on ")
    assert (
        "On the same side of 100 as T5-Large: 2 of 3; the other side, largest gaps first: mam (210 here, 80 there)"
        in text
    )
    assert "Spearman ρ = 1.00" in text
    params = next(c for c in COLUMNS if c.key == "params_pct")
    assert sentence(params, {"lora": 0.64, "houlsby": 1.72, "ia3": 0.047}).startswith(
        "Our shares are 1x the survey's T5-Large shares (median over 3 methods; 1x to 2x)"
    )
    assert sentence(memory, {"adalink": 50.0}) == "No method in common with the survey has results yet."
