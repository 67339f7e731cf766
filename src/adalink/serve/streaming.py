"""Streamed answers (``"stream": true``): each row's tokens go from the model thread to its request's event loop as
they are generated, and out as server-sent events of text deltas.

A streamed request is queued like any other (:mod:`.batcher`): its rows share a ``generate`` with every waiting row
of the same sampling settings, streamed or not. A row that carries a feed gets its kept tokens after every step
(:class:`~.generation.RowStreamer`), and its end as soon as it ends, while longer rows of its batch go on.

The deltas of a choice concatenate to exactly its non-streamed text: the text is decoded without clean-up, so the
text of a row's first tokens is the start of its whole text; a delta holds back what could still change (an
incomplete UTF-8 character, the start of a stop string); and the last delta is taken from the row's final tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from .answers import DONE, CompletionAnswer, cut_at_stop, error_event, sse, usage
from .generation import Completion, TokenFeed

__all__ = ["RowFeeds", "TextDeltas", "event_stream", "stream_events"]

_log = logging.getLogger("adalink.serve")
_INCOMPLETE = "\ufffd"  # what decoding gives for the first bytes of a character whose last bytes are to come


class _Diverged(RuntimeError):
    """A row's final text does not continue what was already sent (its batch failed and ran again, sampling)."""


# (row, its tokens so far, None) after a step; (row, its tokens, Completion) at its end; (row, None, its future)
_Update = tuple[int, list[int] | None, Completion | asyncio.Future[Completion] | None]


class RowFeeds:
    """One request's rows, as the updates its stream waits for: (row, tokens so far, None) after each step, from
    the model thread; (row, None, Completion or future) when the row has ended or its queued example settled."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._updates: asyncio.Queue[_Update] = asyncio.Queue()

    def feed(self, row: int) -> TokenFeed:
        def push(ids: list[int], final: Completion | None) -> None:  # runs in the model thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening any more
                self._loop.call_soon_threadsafe(self._updates.put_nowait, (row, ids, final))

        return push

    def watch(self, futures: list[asyncio.Future[Completion]]) -> None:
        for row, future in enumerate(futures):
            future.add_done_callback(functools.partial(self._settled, row))

    def _settled(self, row: int, future: asyncio.Future[Completion]) -> None:
        self._updates.put_nowait((row, None, future))

    async def next(self) -> _Update:
        return await self._updates.get()


class TextDeltas:
    """One choice's text, sent piece by piece: each piece is new text that no later token can change."""

    def __init__(self, decode: Callable[[list[int]], str], stops: list[str]) -> None:
        self._decode, self._stops = decode, stops
        self.sent = ""
        self._stopped = False  # a stop string was met: the text is complete

    def update(self, ids: list[int]) -> str:
        """The text to send now that the row has generated ``ids`` (possibly nothing)."""
        if self._stopped:
            return ""
        text, reason = cut_at_stop(self._decode(ids), self._stops, "")
        if reason == "stop":
            self._stopped = True
        else:
            text = text[: len(text) - _unsettled(text, self._stops)]
        if not text.startswith(self.sent):  # a row generated again after a failed batch: wait for its end
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta

    def finish(self, completion: Completion) -> tuple[str, str]:
        """(the rest of the text, the finish reason) once the row has ended: its text is as if not streamed."""
        text, reason = cut_at_stop(self._decode(completion.token_ids), self._stops, completion.finish_reason)
        if not text.startswith(self.sent):
            raise _Diverged("the text sent does not start the final text")
        return text[len(self.sent) :], reason


def _unsettled(text: str, stops: list[str]) -> int:
    """How many characters at the end of ``text`` may still change: an incomplete character, or the start of a
    stop string (sent, it could not be taken back if the stop string completes)."""
    settled = text.rstrip(_INCOMPLETE)
    partial = max((k for stop in stops for k in range(1, len(stop)) if settled.endswith(stop[:k])), default=0)
    return len(text) - len(settled) + partial


async def stream_events(
    answer: CompletionAnswer,
    futures: list[asyncio.Future],
    feeds: RowFeeds,
    deltas: list[TextDeltas],
    prompt_tokens: int,
    include_usage: bool,
) -> AsyncIterator[str]:
    """The events of one streamed request, whose rows ``futures`` are queued with ``feeds``; one choice per row.

    An error after the answer has started (status 200 sent) ends the stream with an error event in OpenAI's shape,
    which says what failed but not why: details stay in the server's log. Leaving (client gone) drops the request's
    rows that have not run yet.
    """
    feeds.watch(futures)
    open_rows, generated = set(range(len(futures))), 0
    try:
        for row in range(len(futures)):
            opening = answer.opening(row)
            if opening is not None:
                yield sse(opening)
        while open_rows:
            row, ids, final = await feeds.next()
            if row not in open_rows:
                continue
            if isinstance(final, asyncio.Future):
                final = final.result()  # the row's Completion, or its batch's error
            if final is None:
                assert ids is not None  # a step's update carries the row's tokens
                text = deltas[row].update(ids)
                if text:
                    yield sse(answer.chunk(row, text))
                continue
            text, reason = deltas[row].finish(final)
            if text:
                yield sse(answer.chunk(row, text))
            yield sse(answer.chunk(row, None, reason))
            generated += len(final.token_ids)
            open_rows.discard(row)
        if include_usage:
            yield sse(answer.usage_chunk(usage(prompt_tokens, generated)))
        yield DONE
    except _Diverged:
        _log.warning("a streamed answer changed after part of it was sent (its batch ran again)")
        yield error_event("The answer changed after part of it was sent (its batch failed and ran again); retry.")
    except Exception as err:
        _log.exception("streamed generation failed")
        yield error_event(f"Internal error ({type(err).__name__}) while generating; the server keeps running.")
    finally:
        for future in futures:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a row that ended before its batch failed is not an unheard error
            future.cancel()


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """A server-sent-event response that proxies pass on at once (no buffering, no caching)."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
