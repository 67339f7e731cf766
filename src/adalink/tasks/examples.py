"""The example type every task format reads: one example of any kind, with the index of its task in the run."""

from __future__ import annotations

from dataclasses import dataclass

from ..data import Example, GenerationExample, VQAExample

__all__ = ["AnyExample", "TaskExample"]

AnyExample = Example | VQAExample | GenerationExample
"""A text classification example, an easy-VQA question on an image, or a prompt and its response (sft)."""


@dataclass(frozen=True)
class TaskExample:
    task: int  # index into the run's task list
    example: AnyExample
