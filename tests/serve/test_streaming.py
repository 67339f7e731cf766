"""Stream deltas: each piece sent is text that no later token changes, and the pieces add up to the final text,
stop strings split across tokens and characters split across byte tokens included."""

from __future__ import annotations

import pytest

from adalink.serve.generation import Completion
from adalink.serve.streaming import TextDeltas

# a byte-level vocabulary: token 7 and 8 are the two bytes of "é"
PIECES = {1: b"he", 2: b"llo", 3: b" wor", 4: b"ld", 5: b" ST", 6: b"OP", 7: b"\xc3", 8: b"\xa9", 9: b"!"}


def _decode(ids: list[int]) -> str:
    return b"".join(PIECES[i] for i in ids).decode("utf-8", errors="replace")


def _stream(ids: list[int], stops: list[str], reason: str = "length") -> tuple[list[str], str, str]:
    deltas = TextDeltas(_decode, stops)
    sent = [deltas.update(ids[: k + 1]) for k in range(len(ids))]
    rest, finish = deltas.finish(Completion(ids, reason))
    return [*sent, rest], finish, deltas.sent


@pytest.mark.parametrize(
    ("ids", "stops", "text", "reason"),
    [
        ([1, 2, 3, 4], [], "hello world", "length"),
        ([1, 2, 5, 6, 3, 4], ["STOP"], "hello ", "stop"),  # "ST" is held back until "OP" shows it is the stop
        ([1, 2, 5, 3, 4], ["STOP"], "hello ST world", "length"),  # ... and sent when it is not
        ([1, 7, 8, 9], [], "heé!", "length"),  # half a character is never sent
        ([1, 2, 3, 4], ["lo w"], "hel", "stop"),  # a stop string across three tokens
    ],
)
def test_pieces_add_up_to_the_final_text(ids, stops, text, reason):
    pieces, finish, _ = _stream(ids, stops)
    assert "".join(pieces) == text and finish == reason
    assert not any("\ufffd" in piece for piece in pieces)
    assert all(not piece or not any(stop in "".join(pieces) for stop in stops) for piece in pieces)


def test_what_is_sent_is_never_taken_back():
    deltas = TextDeltas(_decode, [])
    assert deltas.update([1, 2]) == "hello"
    assert deltas.update([1]) == ""  # the row generated again (its batch failed and ran again): nothing to send
    assert deltas.update([1, 2, 3]) == " wor"
    with pytest.raises(RuntimeError, match="does not start the final text"):
        deltas.finish(Completion([3, 4], "stop"))  # a different answer: the stream must end with an error
