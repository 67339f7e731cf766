"""A chat request's messages as one prompt: rendered by the base model's own chat template (the Jinja template its
tokenizer ships, as ``transformers``' ``apply_chat_template``), ending with the cue for the assistant's answer.

A model without a template cannot be chatted with: no role markers were ever learned, and inventing some would give
answers the model was never trained to continue. Such a server answers 400 and points to ``/v1/completions``.
"""

from __future__ import annotations

from jinja2 import TemplateError

from .adapter_stack import AdapterStack
from .http import ApiError
from .intake import public_model_name
from .schemas import ChatMessage
from .settings import ServeSettings

__all__ = ["chat_prompt"]


def chat_prompt(stack: AdapterStack, messages: list[ChatMessage], settings: ServeSettings) -> str:
    """The text of ``messages`` as the model reads it (its special tokens included)."""
    if not messages:
        raise ApiError(400, "messages is empty: give at least one message.", param="messages")
    if stack.chat_template is None:
        raise ApiError(
            400,
            f"The base model {public_model_name(stack.model_name)!r} has no chat template (its tokenizer sets no "
            "chat_template), so messages cannot be rendered: send a prompt to POST /v1/completions instead.",
            param="messages",
        )
    plain = [{"role": message.role, "content": _text(message, i, settings)} for i, message in enumerate(messages)]
    try:
        return stack.render_chat(plain)
    except TemplateError as err:  # the template's own checks, e.g. "roles must alternate user/assistant"
        raise ApiError(400, f"The model's chat template refused the messages: {err}", param="messages") from None


def _text(message: ChatMessage, index: int, settings: ServeSettings) -> str:
    """A message's content as one text: a string, or the concatenation of its text parts."""
    where = f"messages[{index}].content"
    if isinstance(message.content, list):
        for j, part in enumerate(message.content):
            if part.type != "text" or part.text is None:
                refusal = f"{where}[{j}] is a {part.type!r} part; this server reads text parts only."
                raise ApiError(400, refusal, param=f"{where}[{j}]")
        text = "".join(part.text or "" for part in message.content)
    else:
        text = message.content or ""
    if len(text) > settings.max_input_chars:
        raise ApiError(400, f"{where} has {len(text)} characters; at most {settings.max_input_chars}.", param=where)
    return text
