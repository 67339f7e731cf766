"""The bodies of ``POST /v1/completions`` and ``POST /v1/chat/completions``, as OpenAI's clients send them.

OpenAI clients send fields this server has no use for (``user``, ``metadata``, ...): unknown fields are ignored,
known ones are checked, and a known field set to something the server cannot do is named by ``unsupported()``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "ContentPart", "StreamOptions"]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    include_usage: bool = False  # a last chunk with the request's token counts


class _Generation(BaseModel):
    """What both endpoints share: the task, sampling, stop strings, choices and streaming."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str = Field(description="the task whose adapter answers (GET /v1/models)")
    temperature: float = Field(1.0, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    seed: int | None = Field(None, description="sampling only: the same seed and request give the same answer")
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, description="choices per prompt")
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def _first_unsupported(self, defaults: dict[str, Any]) -> str | None:
        defaults = defaults | {"presence_penalty": 0.0, "frequency_penalty": 0.0}
        return next((name for name, default in defaults.items() if getattr(self, name) != default), None)


class CompletionRequest(_Generation):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    best_of: int | None = None
    echo: bool = False
    logprobs: int | None = None
    suffix: str | None = None

    def unsupported(self) -> str | None:
        """The first field set to something this server cannot do."""
        name = self._first_unsupported({"echo": False, "logprobs": None, "suffix": None})
        return name or ("best_of" if self.best_of not in (None, 1) else None)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    role: str = Field(min_length=1, max_length=64)
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage]
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="newer clients' name for max_tokens")
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, Any] | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def unsupported(self) -> str | None:
        """The first field set to something this server cannot do."""
        refused = {
            "logprobs": bool(self.logprobs),
            "logit_bias": bool(self.logit_bias),
            "tools": bool(self.tools),
            "functions": bool(self.functions),
            "response_format": self.response_format not in (None, {"type": "text"}),
        }
        name = self._first_unsupported({"top_logprobs": None})
        return name or next((field for field, refuse in refused.items() if refuse), None)

    @property
    def token_budget(self) -> tuple[int | None, str]:
        """(the new tokens asked for, or None for as many as fit; the field that asked)."""
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"
