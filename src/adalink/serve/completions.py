"""``POST /v1/completions`` and ``POST /v1/chat/completions``: OpenAI's two generation endpoints over the served
text-to-text tasks, ``model`` naming the task (as multi-adapter servers do), so the official ``openai`` client works
unchanged (``base_url=".../v1"``).

Both turn a request into rows (each prompt ``n`` times) queued on the batcher: rows of every task with the same
sampling settings share one ``generate``. A chat is one prompt, its messages rendered by the model's chat template
(:mod:`.chat`). ``"stream": true`` answers the same rows as server-sent events (:mod:`.streaming`).
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from .adapter_stack import AdapterStack
from .answers import ChatAnswer, CompletionAnswer, cut_at_stop, usage
from .batcher import DynamicBatcher
from .chat import chat_prompt
from .http import ApiError
from .intake import enqueue, served_task, submit, texts_of
from .schemas import ChatCompletionRequest, CompletionRequest
from .settings import ServeSettings
from .streaming import RowFeeds, TextDeltas, event_stream, stream_events

__all__ = ["install_completion_routes"]

_Body = CompletionRequest | ChatCompletionRequest


@dataclass(frozen=True)
class _Plan:
    """A checked generation request: the rows to queue and how to read their answers."""

    task: str
    prompts: list[list[int]]  # token ids per prompt
    n: int  # choices per prompt
    max_tokens: int
    stops: list[str]
    key: Hashable  # the batcher's key: rows with equal keys may share a generate


def install_completion_routes(
    app: FastAPI, stack: AdapterStack, batcher: DynamicBatcher, settings: ServeSettings
) -> None:
    def generative_task(model: str) -> str:
        task = served_task(stack, model, "model")
        if not stack.generative:
            message = f"Task {task!r} has a classification head: it labels texts, it writes none. POST /v1/classify."
            raise ApiError(400, message, param="model")
        return task

    def plan(task: str, body: _Body, prompts: list[list[int]], budget: tuple[int | None, str], what: str) -> _Plan:
        unsupported = body.unsupported()
        if unsupported:
            raise ApiError(400, f"{unsupported}={getattr(body, unsupported)!r} is not supported.", param=unsupported)
        stops = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
        if len(stops) > 4 or not all(stops):
            raise ApiError(400, "stop takes up to 4 non-empty strings.", param="stop")
        if len(prompts) * body.n > settings.max_items:
            message = f"n={body.n} for {len(prompts)} prompt(s) asks {len(prompts) * body.n} choices; at most "
            raise ApiError(400, message + f"{settings.max_items} per request.", param="n")
        max_tokens, field = budget
        longest, context = max(len(ids) for ids in prompts), stack.context_length
        room = None if context is None else context - longest
        if max_tokens is None:  # chat: as many as the limit and the context allow
            max_tokens = settings.max_new_tokens if room is None else max(1, min(settings.max_new_tokens, room))
        elif max_tokens > settings.max_new_tokens:
            raise ApiError(400, f"{field} is at most {settings.max_new_tokens}.", param=field)
        if room is not None and max_tokens > room:
            message = f"This model's context is {context} tokens; the {what} has {longest} and {field} asks "
            raise ApiError(400, message + f"{max_tokens} more.", param="prompt" if what == "prompt" else "messages")
        seeded = body.seed is not None and body.temperature > 0
        # a seeded sampled request runs in a generate of its own (a unique key): only then does its seed fix its answer
        alone = uuid.uuid4() if seeded else None
        key = ("complete", body.temperature, body.top_p, body.seed if seeded else None, alone)
        return _Plan(task, prompts, body.n, max_tokens, stops, key)

    async def respond(answer: CompletionAnswer, plan: _Plan, body: _Body) -> Any:
        rows = [(plan.task, ids, plan.max_tokens) for ids in plan.prompts for _ in range(plan.n)]
        prompt_tokens = sum(len(ids) for ids in plan.prompts)
        if not body.stream:
            results = await submit(batcher, plan.key, plan.task, [(*row, None) for row in rows], "model")
            choices = [cut_at_stop(stack.decode(r.token_ids), plan.stops, r.finish_reason) for r in results]
            return answer.whole(choices, usage(prompt_tokens, sum(len(r.token_ids) for r in results)))
        feeds = RowFeeds()
        payloads = [(*row, feeds.feed(i)) for i, row in enumerate(rows)]
        futures = enqueue(batcher, plan.key, plan.task, payloads, "model")  # refused here: still a plain 4xx/503
        deltas = [TextDeltas(stack.decode, plan.stops) for _ in rows]
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return event_stream(stream_events(answer, futures, feeds, deltas, prompt_tokens, include_usage))

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest) -> Any:
        task = generative_task(body.model)
        prompts = [stack.encode(text) for text in texts_of(body.prompt, "prompt", settings)]
        checked = plan(task, body, prompts, (body.max_tokens, "max_tokens"), "prompt")
        return await respond(CompletionAnswer(task), checked, body)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest) -> Any:
        task = generative_task(body.model)
        prompt = stack.encode(chat_prompt(stack, body.messages, settings), special_tokens=False)
        return await respond(ChatAnswer(task), plan(task, body, [prompt], body.token_budget, "chat"), body)
