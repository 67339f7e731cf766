"""/v1/completions and /v1/chat/completions as the official ``openai`` client sees them, under a real uvicorn: chat
rendered by the model's template, streams whose deltas add up to exactly the non-streamed answer, and errors in
OpenAI's shape (before a stream: a 4xx the client raises; inside one: an error event, with nothing of the cause)."""

from __future__ import annotations

import pytest

from adalink.serve import AdapterStack
from adalink.serve.app import ServeSettings, create_app
from serve_support import serving

openai = pytest.importorskip("openai")

CHAT = [{"role": "system", "content": "the topic"}, {"role": "user", "content": "good food was very lovely"}]
PROMPTS = ["good movie", "awful food service 12", "the day was not lovely"]


@pytest.fixture(scope="module")
def stack(text2text_runs, chat_model) -> AdapterStack:
    """The text-to-text runs on a copy of their tiny Llama whose tokenizer has a chat template (same weights)."""
    return AdapterStack.from_runs([text2text_runs["sentiment"], text2text_runs["topic"]], model=str(chat_model))


@pytest.fixture(scope="module")
def url(stack):
    with serving(create_app(stack, ServeSettings(batch_window_ms=2, max_new_tokens=24))) as url:
        yield url


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)


def test_chat_renders_the_messages_with_the_template_and_answers_as_the_stack(client, stack):
    answer = client.chat.completions.create(model="topic", messages=CHAT, max_tokens=12, temperature=0)
    prompt = stack.encode(stack.render_chat(CHAT), special_tokens=False)
    assert stack.render_chat(CHAT).endswith("user: good food was very lovely\nassistant:")
    (expected,) = stack.complete([("topic", prompt, 12)])
    choice = answer.choices[0]
    assert answer.object == "chat.completion" and answer.model == "topic" and answer.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and choice.message.content == stack.decode(expected.token_ids)
    assert choice.finish_reason == expected.finish_reason and expected.token_ids
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (len(prompt), len(expected.token_ids))
    other = client.chat.completions.create(model="sentiment", messages=CHAT, max_tokens=12, temperature=0)
    assert other.choices[0].message.content != choice.message.content  # model routes to the task's adapter


def test_a_streamed_chat_adds_up_to_the_answer(client):
    ask = {"model": "topic", "messages": CHAT, "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    *choices, last = chunks
    assert choices[0].choices[0].delta.role == "assistant" and not choices[0].choices[0].delta.content
    content = [c.choices[0].delta.content for c in choices[1:-1]]
    assert len(content) > 1 and "".join(content) == whole.choices[0].message.content
    assert choices[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert [c.choices[0].finish_reason for c in choices[:-1]] == [None] * (len(choices) - 1)
    assert last.choices == [] and last.usage == whole.usage


@pytest.mark.parametrize("stop", [None, "cut"])
def test_streamed_completions_add_up_to_the_answers(client, stop):
    ask = {"model": "sentiment", "prompt": PROMPTS, "max_tokens": 10, "temperature": 0, "n": 2}
    whole = client.completions.create(**ask)
    texts = [c.text for c in whole.choices]
    assert len(texts) == 6 and texts[0] == texts[1] and all(texts)  # n (greedy: equal) choices per prompt, in order
    if stop:  # a stop string met in the middle of a choice's text: cut there, streamed or not
        stop = texts[2][3:6]
        whole = client.completions.create(**ask, stop=stop)
        assert whole.choices[2].finish_reason == "stop" and whole.choices[2].text == texts[2][: texts[2].find(stop)]
    pieces: dict[int, list[str]] = {i: [] for i in range(6)}
    reasons = {}
    for chunk in client.completions.create(**ask, stop=stop, stream=True):
        assert chunk.object == "text_completion" and len(chunk.choices) == 1
        choice = chunk.choices[0]
        pieces[choice.index].append(choice.text)
        if choice.finish_reason:
            reasons[choice.index] = choice.finish_reason
    assert ["".join(pieces[i]) for i in range(6)] == [c.text for c in whole.choices]
    assert [reasons[i] for i in range(6)] == [c.finish_reason for c in whole.choices]


def test_a_seed_fixes_a_sampled_answer(client):
    ask = {"model": "topic", "messages": CHAT, "max_tokens": 12, "temperature": 1.5, "seed": 7}
    answers = {client.chat.completions.create(**ask).choices[0].message.content for _ in range(2)}
    assert len(answers) == 1


def test_bad_requests_raise_the_clients_error_naming_the_field(client):
    image = [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    cases = [
        ({"messages": [{"role": "user", "content": image}]}, "messages[0].content[0]", "text parts only"),
        ({"messages": CHAT, "max_tokens": 25}, "max_tokens", "max_tokens is at most 24"),
        ({"messages": CHAT, "max_completion_tokens": 25}, "max_completion_tokens", "at most 24"),
        ({"messages": CHAT, "logprobs": True}, "logprobs", "not supported"),
        ({"messages": []}, "messages", "messages is empty"),
    ]
    for fields, param, message in cases:
        for stream in (False, True):  # a stream is refused before it starts: the same 400
            with pytest.raises(openai.BadRequestError) as raised:
                client.chat.completions.create(model="topic", stream=stream, **fields)
            assert raised.value.param == param and message in raised.value.message, (fields, raised.value.body)
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=CHAT)
    assert raised.value.param == "model"


def test_a_model_without_a_chat_template_is_a_clear_400(text2text_runs):
    stack = AdapterStack.from_runs([text2text_runs["topic"]])
    with serving(create_app(stack)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as raised:
            client.chat.completions.create(model="topic", messages=CHAT)
        assert raised.value.param == "messages" and "no chat template" in raised.value.message
        assert "/" not in raised.value.message.split("POST")[0]  # the base model by name, not by path
        assert client.completions.create(model="topic", prompt="good", max_tokens=2).choices  # completions still do


def test_an_error_inside_a_stream_is_an_error_event_that_tells_nothing_of_its_cause(client, stack, monkeypatch):
    def failing(requests, sampling, feeds):
        for feed in feeds:
            feed([5, 6], None)  # some text is sent first
        raise RuntimeError("CUDA error in /srv/secret/model.py")

    monkeypatch.setattr(stack, "complete", failing)
    stream = client.chat.completions.create(model="topic", messages=CHAT, max_tokens=5, stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk)
    assert received and received[0].choices[0].delta.role == "assistant"
    assert "RuntimeError" in raised.value.message and "secret" not in str(raised.value.body)
    monkeypatch.undo()
    assert client.chat.completions.create(model="topic", messages=CHAT, max_tokens=3).choices  # the server goes on


def test_a_client_that_leaves_a_stream_does_not_hurt_the_server(client):
    stream = client.completions.create(model="topic", prompt=PROMPTS, max_tokens=20, temperature=0, stream=True)
    next(iter(stream))
    stream.close()
    answer = client.completions.create(model="topic", prompt="good", max_tokens=4, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length")
