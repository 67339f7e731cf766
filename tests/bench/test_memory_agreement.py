"""The bench's training memory beside train_cost.py's, relative to each one's full tuning."""

from adalink.bench.aggregate import MethodRow
from adalink.bench.memory_agreement import memory_agreement_parts, memory_gap_parts


def _row(method, relative, profile="standard"):
    return MethodRow(profile, "minilm", method, [], relative={"memory_bytes": relative})


def test_each_method_both_measured_with_its_difference_and_the_largest_named():
    rows = [
        _row("full", 100.0),
        _row("adalink", 40.0),
        _row("lora", 50.0),
        _row("houlsby (bottleneck 8, dropout 0.1)", 70.0),  # an earlier config: train_cost runs today's
        _row("bitfit", None),  # no training-only memory yet
        _row("ia3", 30.0, profile="quick"),  # not the headline
    ]
    train_cost = {"batch": 16, "length": 64, "rows": [
        {"contender": "adalink", "memory_vs_full": 0.35},
        {"contender": "lora", "memory_vs_full": 0.38},
        {"contender": "ia3", "memory_vs_full": 0.39},
        {"contender": "full", "memory_vs_full": 1.0},
    ]}  # fmt: skip
    text = "\n".join(memory_agreement_parts(rows, train_cost))
    assert "| adalink | 40.0 | 35.0 | +5.0 |" in text and "| lora | 50.0 | 38.0 | +12.0 |" in text
    assert "The largest difference is lora's, +12.0 points; the median is +8.5." in text
    assert "Not in both: bitfit." in text and "ia3" not in text.split("Not in both")[1]
    assert "houlsby" not in text.split("Not in both")[1]


def test_nothing_without_a_method_on_both_sides():
    assert memory_agreement_parts([_row("full", 100.0)], {"rows": [{"contender": "full", "memory_vs_full": 1}]}) == []


def test_the_memory_gap_sentence_names_each_method_and_allocator():
    gap = {"steps": 30, "batch": 16, "length": 64, "rows": [
        {"method": "adalink", "allocator": "glibc default", "harness_mib": 454, "bare_loop_mib": 343,
         "difference_mib": 111},
        {"method": "adalink", "allocator": "mmap threshold 128 KiB", "harness_mib": 323, "bare_loop_mib": 243,
         "difference_mib": 80},
    ]}  # fmt: skip
    (text, blank) = memory_gap_parts(gap)
    assert text.startswith("`benchmarks/memory_gap.py` trained 30 steps of batch 16 x 64") and blank == ""
    assert (
        "with glibc default: adalink 454 vs 343 (+111) MiB; with mmap threshold 128 KiB: adalink 323 vs 243 (+80)"
        in text
    )
    assert memory_gap_parts({"rows": []}) == []


def test_the_memory_gap_sentence_names_the_task_where_a_file_covers_several():
    row = {"method": "full", "allocator": "glibc default", "harness_mib": 800, "bare_loop_mib": 742}
    row["difference_mib"] = 58
    gap = {"steps": 30, "batch": 16, "length": 64, "rows": [{**row, "task": "tweets"}, {**row, "task": "bbc"}]}
    (text, _) = memory_gap_parts(gap)
    assert "with glibc default: full (tweets) 800 vs 742 (+58), full (bbc) 800 vs 742 (+58) MiB" in text
