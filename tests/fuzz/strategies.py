"""Hypothesis strategies shared by the fuzz tests: arbitrary JSON values, and JSON objects near a valid one."""

from __future__ import annotations

from typing import Any

import pytest

st = pytest.importorskip("hypothesis.strategies")

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
"""Any value JSON (as Python's json module reads it, NaN and infinities included) can hold."""


def near(valid: dict[str, Any], extra_keys: list[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Objects that differ from ``valid`` in a few fields: some replaced by arbitrary JSON, some dropped, and
    sometimes a field added (one of ``extra_keys`` or any text)."""
    keys = sorted(valid) + list(extra_keys or [])

    @st.composite
    def build(draw) -> dict[str, Any]:
        document = dict(valid)
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
            document[key] = draw(JSON)
        for key in draw(st.lists(st.sampled_from(sorted(valid)), max_size=1, unique=True)) if valid else []:
            document.pop(key, None)
        if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
            document[draw(st.text(max_size=8))] = draw(JSON)
        return document

    return build()
