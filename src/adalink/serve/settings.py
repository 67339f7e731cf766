"""``ServeSettings``: batching, the limits that keep one client from hurting the others, and who may change the
served adapters (off unless the operator says so: ``--admin-token``, or the loudly named opt-out)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import UsageError

__all__ = ["ServeSettings"]


@dataclass
class ServeSettings:
    """The options of ``adalink serve`` that shape the HTTP app (one typed field, one flag)."""

    batch_window_ms: float = field(default=5.0, metadata={"help": "how long the first example waits for others"})
    max_batch_size: int = field(default=32, metadata={"help": "examples per forward pass"})
    max_queue: int = field(default=1024, metadata={"help": "examples waiting at most; beyond it: 503, retry"})
    max_items: int = field(default=64, metadata={"help": "inputs (or prompts) per request"})
    max_input_chars: int = field(default=10_000, metadata={"help": "characters per input or prompt"})
    max_new_tokens: int = field(default=256, metadata={"help": "largest max_tokens a completion may ask for"})
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "request body size"})
    admin_token: str | None = field(
        default=None,
        metadata={
            "help": "turns on run-time adapter changes (POST/DELETE /v1/adapters), which then need 'Authorization: "
            "Bearer TOKEN' (default: from $ADALINK_ADMIN_TOKEN; unset = off)"
        },
    )
    allow_unauthenticated_admin: bool = field(
        default=False,
        metadata={"help": "UNSAFE beyond a trusted network: turn on run-time adapter changes with NO token"},
    )
    adapter_root: str | None = field(
        default=None,
        metadata={
            "help": "POST /v1/adapters loads only run directories under DIR (relative paths are taken from it; "
            "anything resolving outside it, symlinks included, is refused); unset = no loading at run time"
        },
    )

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_token) or self.allow_unauthenticated_admin

    def validate(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_items", "max_input_chars", "max_new_tokens", "max_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} {value!r} is invalid: expected a positive integer.")
        if not 0 <= self.batch_window_ms <= 60_000:
            raise UsageError(f"--batch-window-ms {self.batch_window_ms!r} is invalid: expected 0 to 60000.")
        if self.admin_token is not None and not self.admin_token.strip():
            raise UsageError("--admin-token is empty: give a secret, or leave it out to turn adapter changes off.")
        if self.admin_token and self.allow_unauthenticated_admin:
            raise UsageError("--admin-token and --allow-unauthenticated-admin contradict each other: give one.")
        if self.adapter_root is not None and not os.path.isdir(self.adapter_root):
            raise UsageError(f"--adapter-root {self.adapter_root!r} is invalid: expected an existing directory.")
