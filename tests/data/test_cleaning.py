"""The steps every text task shares: normalise, deduplicate, split by a stable hash (no data needed)."""

import random

from adalink.data.cleaning import Example, deduplicate, normalise_text, split_examples, split_key


def test_split_assignment_does_not_depend_on_input_order():
    examples = [Example(f"sentence number {i}", i % 3) for i in range(2_000)]
    shuffled = examples.copy()
    random.Random(0).shuffle(shuffled)
    assert split_examples(shuffled) == split_examples(examples)
    assert split_examples(reversed(examples)) == split_examples(examples)


def test_split_key_is_stable_sha256():
    # First 8 bytes of sha256(b"hello") = 2cf24dba5fb0a30e; fixed across processes, unlike hash().
    assert split_key("hello") == 0x2CF24DBA5FB0A30E / 2**64


def test_deduplicate_drops_repeats_and_conflicts():
    pairs = [("a  b", 0), ("a b", 0), (" c ", 1), ("c", 0), ("   ", 1), ("d", 1)]
    examples, repeats, conflicting = deduplicate(pairs)
    assert examples == [Example("a b", 0), Example("d", 1)]
    assert (repeats, conflicting) == (1, 2)


def test_normalise_text_collapses_whitespace():
    assert normalise_text("  a\r\n b\t c  ") == "a b c"
    assert normalise_text(" \n ") == ""
