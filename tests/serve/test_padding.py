"""Sub-batches of similar length: padding never dominates a forward pass."""

from adalink.serve.padding import length_groups


def test_length_groups_split_only_wasteful_padding():
    assert length_groups([10, 12, 11, 9]) == [[3, 0, 2, 1]]  # similar lengths: one forward pass, ascending
    groups = length_groups([10] * 31 + [512])
    assert groups == [list(range(31)), [31]]  # one long article does not pad 31 tweets to 512 tokens
    assert sorted(i for g in length_groups([5, 300, 7, 64, 6, 250, 70]) for i in g) == list(range(7))
    assert length_groups([]) == []
