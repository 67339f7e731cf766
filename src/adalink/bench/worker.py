"""One bench run in a fresh process: ``python -m adalink.bench.worker SPEC.json RESULT.json``.

A fresh process per run makes the peak resident memory (``VmHWM`` of ``/proc/self/status``) that run's own. The
run trains through the same harness as ``adalink train`` (:func:`adalink.training.loop.train`: training throughput
over the whole step window, micro-batches, optimiser step and collation included; its memory peak over the
optimiser steps alone), then scores validation, times inference unmerged and merged, probes forgetting and measures
the saved adapter. The result is written atomically.

``python -m adalink.bench.worker --memory-only SPEC.json RESULT.json`` only trains and measures the training memory
(:mod:`.train_memory`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..io import write_json_atomic
from ..process_memory import peak_rss_bytes, rss_bytes
from ..provenance import provenance
from .grid import BenchRun, default_method_config, recipe
from .measure import files_size, forgetting_probe, generic_texts, time_throughput
from .train_memory import MEMORY_SCOPE

if TYPE_CHECKING:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    from ..runs.reading import LoadedRun

__all__ = ["main", "measure_training_memory", "run_spec"]


def _caller(model: torch.nn.Module) -> Callable[..., Any]:
    """``call(batch)``: a PeftModel routed to the batch's tasks; a plain model (the base, a merged one) as it is
    (the harness's own rule, :func:`adalink.tasks.calls.model_call`)."""
    from ..tasks.calls import model_call

    forward = model_call(model)

    def call(batch: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        return forward(inputs, batch["task_ids"], **kwargs)

    return call


def _preload(model: str, tasks: list) -> None:
    """Import what ``train`` imports and build the model on the meta device (no memory), so that the resident
    memory measured before training holds the libraries but no weights."""
    from accelerate import Accelerator  # noqa: F401
    from transformers import AutoConfig

    from ..runs.loading import setup_model
    from ..tasks.formats import ClassificationFormat

    path, fmt, _ = setup_model(model, "auto", tasks)
    config = AutoConfig.from_pretrained(path)
    auto_class: type[AutoModelForSequenceClassification | AutoModelForSeq2SeqLM | AutoModelForCausalLM]
    if isinstance(fmt, ClassificationFormat):
        from transformers import AutoModelForSequenceClassification as auto_class
    elif getattr(fmt, "encoder_decoder", False):
        from transformers import AutoModelForSeq2SeqLM as auto_class
    else:
        from transformers import AutoModelForCausalLM as auto_class
    with torch.device("meta"):
        auto_class.from_config(config)


def _prepare(spec: BenchRun) -> tuple[list, int, int]:
    """Threads, the task's data and the libraries loaded: (datasets, steps, resident bytes before the model)."""
    if spec.threads > 0:
        torch.set_num_threads(spec.threads)
    from ..runs.loading import load_tasks
    from ..tasks.formats import TaskInfo
    from ..tasks.options import TaskOptions

    datasets = load_tasks(TaskOptions(task=spec.task))  # cached in-process: train() reuses it
    steps = (
        spec.max_steps
        if spec.max_steps is not None
        else max(spec.min_steps, -(-int(spec.epochs * len(datasets[0].train)) // spec.batch_size))
    )
    _preload(spec.model, [TaskInfo(d.name, d.label_names) for d in datasets])
    return datasets, steps, rss_bytes()  # libraries, data and tokenizer loaded, no model weights yet


def measure_training_memory(spec: BenchRun) -> dict[str, Any]:
    """Train ``spec`` and keep only its memory (training-only peak, whole-run peak) and what it trained."""
    _, steps, rss_before = _prepare(spec)
    with tempfile.TemporaryDirectory(prefix="adalink-bench-memory-") as tmp:
        result = _train(spec, steps, Path(tmp) / "run", rss_before)
    metrics = result.pop("metrics")
    check_recipe(spec, metrics["method_config"])
    result["trainable_params"] = metrics["trainable_params"]
    return result


def run_spec(spec: BenchRun) -> dict[str, Any]:
    """Train and measure one run; returns the result document (without the spec)."""
    from ..runs.reading import load_run

    datasets, steps, rss_before = _prepare(spec)
    with tempfile.TemporaryDirectory(prefix="adalink-bench-") as tmp:
        out = Path(tmp) / "run"
        result = _train(spec, steps, out, rss_before)
        check_recipe(spec, result["metrics"]["method_config"])
        loaded = load_run(out)
        result["validation_score"] = _validation_score(spec, loaded, datasets) if spec.validate else None
        result.update(_inference_speeds(spec, loaded, datasets, out))
        result["forgetting"] = _forgetting(spec, loaded, datasets)
    return result


def check_recipe(spec: BenchRun, trained: dict[str, Any]) -> None:
    """Refuse a run whose method config is not the one its spec (and so its file name and key) promises. A field the
    spec lacks (added to the method after its runs were made) is taken at today's default, which keeps the earlier
    behaviour (a measurement of an earlier run's recipe trains with it)."""
    if spec.method_config is None:
        return
    planned = {**default_method_config(spec.method), **spec.method_config}
    if recipe(trained) != planned:
        raise RuntimeError(
            f"{spec.method} trained with {recipe(trained)}, but the bench planned {spec.method_config}: the method's "
            "defaults changed between planning and training; re-run the bench."
        )


def _config_options(spec: BenchRun) -> dict[str, Any]:
    """``rank``, ``dropout`` and ``method_config`` that make ``adalink train`` build ``spec.method_config``, where it
    is not the method's default (runs of earlier recipes, measured again)."""
    from ..training.methods import method_class

    default = default_method_config(spec.method)
    changed = {key: value for key, value in (spec.method_config or {}).items() if default.get(key) != value}
    size_field = method_class(spec.method).size_field
    rank = changed.pop(size_field, None) if size_field else None
    options: dict[str, Any] = {"rank": rank, "dropout": changed.pop("dropout", None)}
    options["method_config"] = json.dumps(changed) if changed else None
    return options


def _train(spec: BenchRun, steps: int, out: Path, rss_before: int) -> dict[str, Any]:
    """Train through ``adalink train``'s harness into ``out``; its metrics, memory and adapter size."""
    from ..training.args import TrainArgs
    from ..training.loop import train

    args = TrainArgs(
        **_config_options(spec),
        model=spec.model,
        task=spec.task,
        method=spec.method,
        lr=spec.lr,
        head_lr=spec.head_lr,
        max_steps=steps,
        batch_size=spec.batch_size,
        grad_accum=spec.grad_accum,
        max_length=spec.max_length,
        seed=spec.seed,
        output_dir=str(out),
        save_every=steps,
        keep_checkpoints=1,
        max_eval=spec.max_eval,
    )
    metrics = train(args)
    train_peak = metrics["train_peak_rss_bytes"]  # None where this system cannot reset the peak
    return {
        "metrics": metrics,
        "score": metrics["score"],
        "steps": steps,
        # the steps, the test evaluation and saving (loading left out: the training peak's reset dropped it)
        "peak_rss_bytes": max(train_peak or 0, peak_rss_bytes()),
        "rss_before_model_bytes": rss_before,
        "train_peak_rss_bytes": train_peak,
        "train_memory_bytes": None if train_peak is None else train_peak - rss_before,
        **(MEMORY_SCOPE if train_peak is not None else {"memory_scope": "unmeasured"}),
        "gpu_peak_bytes": metrics["train_peak_gpu_bytes"],
        "adapter_bytes": files_size(out),
    }


def _validation_score(spec: BenchRun, loaded: LoadedRun, datasets: list) -> float:
    scores = loaded.evaluate(datasets, split="validation", max_examples=spec.max_eval)  # run.json: spec.max_length
    return sum(scores.values()) / len(scores)


def _inference_speeds(spec: BenchRun, loaded: LoadedRun, datasets: list, out: Path) -> dict[str, Any]:
    """Inference throughput unmerged and merged (where the method merges), alternating rounds over the same
    batches, and the largest difference between the two models' logits."""
    from ..runs.reading import load_run
    from ..tasks.examples import TaskExample
    from ..tasks.formats import ClassificationFormat

    model, fmt, tokenizer = loaded.model, loaded.fmt, loaded.tokenizer
    examples = list(datasets[0].test)[: spec.infer_batches * spec.infer_batch_size]
    batches = []
    for start in range(0, len(examples), spec.infer_batch_size):
        items = [TaskExample(0, e) for e in examples[start : start + spec.infer_batch_size]]
        if isinstance(fmt, ClassificationFormat):
            batches.append(fmt.collate(items, tokenizer, spec.max_length))
        else:
            batches.append(fmt.generation_batch(items, tokenizer, spec.max_length))
    contenders = {"unmerged": _caller(model)}
    result: dict[str, Any] = {}
    merge_note = None
    if model.peft_config.mergeable and model.peft_config.shares_base:
        try:
            other = load_run(out)
            merged = other.model.merge_and_unload(task=other.task_names[0])
            contenders["merged"] = _caller(merged.eval())
            with torch.inference_mode():
                a = contenders["unmerged"](batches[0]).logits.float()
                b = contenders["merged"](batches[0]).logits.float()
            result["merge_max_abs_diff"] = float((a - b).abs().max())
        except Exception as err:  # a method that claims mergeable but cannot merge this model
            merge_note = f"merge failed: {type(err).__name__}: {err}"
    elif not model.peft_config.shares_base:
        merge_note = "full tuning: the trained model is already its own merged form"
    else:
        merge_note = "not mergeable"
    speeds = time_throughput(contenders, batches, spec.infer_rounds)
    result["infer_tokens_per_second"] = round(speeds["unmerged"], 1)
    result["infer_merged_tokens_per_second"] = round(speeds["merged"], 1) if "merged" in speeds else None
    result["merge_note"] = merge_note
    return result


def _forgetting(spec: BenchRun, loaded: LoadedRun, datasets: list) -> dict[str, Any]:
    """How far the tuned model drifted from its base on held-out generic text: the language-modelling loss added
    (text-to-text), or 1 - the mean cosine similarity of the pooled embeddings (classification)."""
    from ..runs.loading import setup_model
    from ..tasks.formats import ClassificationFormat, TaskInfo

    setup = setup_model(spec.model, "auto", [TaskInfo(d.name, d.label_names) for d in datasets])
    base = setup.build_base(seed=spec.seed).eval()
    texts = generic_texts(spec.generic_texts)
    probe_batches = []
    for start in range(0, len(texts), 16):
        batch = dict(
            loaded.tokenizer(
                texts[start : start + 16],
                padding=True,
                truncation=True,
                max_length=spec.max_length,
                return_tensors="pt",
            )
        )
        batch["task_ids"] = torch.zeros(batch["input_ids"].shape[0], dtype=torch.long)
        probe_batches.append(batch)
    language_model = not isinstance(loaded.fmt, ClassificationFormat)
    before = forgetting_probe(_caller(base), probe_batches, language_model=language_model)
    after = forgetting_probe(_caller(loaded.model), probe_batches, language_model=language_model)
    if language_model:
        forgetting = {
            "kind": "lm_loss_delta",
            "value": float(after - before),
            "base_loss": float(before),
            "tuned_loss": float(after),
        }
    else:
        cosine = torch.nn.functional.cosine_similarity(before, after, dim=-1).mean()
        forgetting = {"kind": "embedding_drift", "value": float(1 - cosine)}
    forgetting["texts"] = len(texts)
    return forgetting


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    memory_only = argv[:1] == ["--memory-only"]
    argv = argv[1:] if memory_only else argv
    if len(argv) != 2:
        print("usage: python -m adalink.bench.worker [--memory-only] SPEC.json RESULT.json", file=sys.stderr)
        return 2
    spec = BenchRun(**json.loads(Path(argv[0]).read_text()))
    began = time.perf_counter()
    document: dict[str, Any] = {"spec": spec.to_dict(), "spec_key": spec.key(), "run_id": spec.run_id}
    try:
        document.update(measure_training_memory(spec) if memory_only else run_spec(spec), status="ok")
    except Exception as err:  # recorded in the result; the bench goes on with the next run
        document.update(status="error", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
    document["environment"] = provenance()
    document["wall_seconds"] = round(time.perf_counter() - began, 2)
    document["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json_atomic(Path(argv[1]), document, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
