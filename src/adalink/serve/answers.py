"""The answers of ``/v1/completions`` and ``/v1/chat/completions`` in OpenAI's shapes: whole, or as the chunks of a
server-sent-event stream (``data: {chunk}`` events, then ``data: [DONE]``).

A completion's chunk carries its choice's next ``text``; a chat chunk a ``delta``: first the assistant's ``role``,
then ``content``, then an empty delta with the ``finish_reason``. With ``stream_options.include_usage`` a last chunk
with no choices carries the request's ``usage``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

__all__ = ["ChatAnswer", "CompletionAnswer", "cut_at_stop", "error_event", "sse", "usage"]

DONE = "data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> str:
    """One server-sent event holding ``data`` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def error_event(message: str, kind: str = "server_error", code: int = 500) -> str:
    """An error inside a stream that has already answered 200: OpenAI's error body as one event."""
    return sse({"error": {"message": message, "type": kind, "param": None, "code": code}})


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}


def cut_at_stop(text: str, stops: list[str], reason: str) -> tuple[str, str]:
    """Cut ``text`` before the first stop string, as OpenAI does (the stop string is not returned)."""
    cuts = [text.find(stop) for stop in stops if stop in text]
    return (text[: min(cuts)], "stop") if cuts else (text, reason)


class CompletionAnswer:
    """One ``/v1/completions`` request's answer (its id and creation time are shared by all of its chunks)."""

    object, chunk_object, prefix = "text_completion", "text_completion", "cmpl"

    def __init__(self, model: str) -> None:
        self.model, self.id, self.created = model, f"{self.prefix}-{uuid.uuid4().hex}", int(time.time())

    def whole(self, choices: list[tuple[str, str]], counts: dict[str, int]) -> dict[str, Any]:
        """The non-streamed answer: (text, finish_reason) per choice."""
        listed = [self.choice(i, text, reason) for i, (text, reason) in enumerate(choices)]
        return self._envelope(self.object, listed) | {"usage": counts}

    def choice(self, index: int, text: str, reason: str | None) -> dict[str, Any]:
        return {"index": index, "text": text, "logprobs": None, "finish_reason": reason}

    def opening(self, index: int) -> dict[str, Any] | None:
        """The chunk that opens a choice's stream, if the shape has one."""
        return None

    def chunk(self, index: int, text: str | None = None, reason: str | None = None) -> dict[str, Any]:
        """A stream chunk: a choice's next text, or (``reason``) its end."""
        return self._envelope(self.chunk_object, [self.choice(index, text or "", reason)])

    def usage_chunk(self, counts: dict[str, int]) -> dict[str, Any]:
        return self._envelope(self.chunk_object, []) | {"usage": counts}

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices}


class ChatAnswer(CompletionAnswer):
    """One ``/v1/chat/completions`` request's answer: the choice is the assistant's message."""

    object, chunk_object, prefix = "chat.completion", "chat.completion.chunk", "chatcmpl"

    def choice(self, index: int, text: str, reason: str | None) -> dict[str, Any]:
        message = {"role": "assistant", "content": text}
        return {"index": index, "message": message, "logprobs": None, "finish_reason": reason}

    def opening(self, index: int) -> dict[str, Any]:
        return self._delta(index, {"role": "assistant", "content": ""}, None)

    def chunk(self, index: int, text: str | None = None, reason: str | None = None) -> dict[str, Any]:
        return self._delta(index, {} if text is None else {"content": text}, reason)

    def _delta(self, index: int, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._envelope(self.chunk_object, [choice])
