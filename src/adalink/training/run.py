"""Recipes: train, evaluate, predict and merge, composed from library pieces.

The loop runs under ``accelerate`` (one process, or several with ``accelerate launch``); the data order is a pure
function of (seed, step) (:mod:`.stream`), so checkpoints need no data-loader state and a resumed run matches an
uninterrupted one bit for bit on CPU.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import TASK_NAMES, TextClassificationData, VQAData, load_easyvqa, load_file_task, load_text_task
from ..methods.base import METHOD_CONFIGS
from ..peft_model import PeftModel
from .checkpoints import latest_checkpoint, read_checkpoint, restore_rng, rng_state, write_checkpoint
from .formats import ClassificationFormat, TaskInfo, TextToTextFormat, make_format
from .methods import attach_method, method_names
from .progress import progress_bar
from .stream import MIXING, MixedTaskStream, TaskExample

__all__ = ["RUN_FILE", "TrainArgs", "TrainingDivergedError", "evaluate", "load_tasks", "train"]

RUN_FILE = "run.json"
VQA_TASK = "easyvqa"
VLM_ALIAS = "easyvqa-vlm"  # the stage-1 TinyVLM (vision side trained on easy-VQA, MiniLM frozen), built once
Format = ClassificationFormat | TextToTextFormat
METRICS_FILE = "metrics.json"
FULL_TUNING_LR = 5e-5  # other methods: their config's default_lr


def default_lr(method: str) -> float:
    """The learning rate ``adalink train --method METHOD`` uses when ``--lr`` is not given."""
    return FULL_TUNING_LR if method == "full" else METHOD_CONFIGS[method].default_lr


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainArgs:
    model: str = field(
        default="minilm",
        metadata={"help": "minilm, smollm2-135m, a local directory or a cached hub name; easyvqa: easyvqa-vlm"},
    )
    task: str = field(
        default="tweets", metadata={"help": f"comma-separated tasks from {', '.join(TASK_NAMES)}, or easyvqa (images)"}
    )
    method: str = field(default="adalink", metadata={"help": "one of: " + ", ".join(method_names())})
    rank: int = field(default=8, metadata={"help": "AdaLink rank r"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the method's own input (AdaLink: paper's 0.1)"})
    lr: float | None = field(default=None, metadata={"help": "peak learning rate (default: 2e-3 adalink, 5e-5 full)"})
    head_lr: float | None = field(
        default=None,
        metadata={"help": "peak learning rate of the new classification head, for every method (default: --lr)"},
    )
    max_steps: int = field(default=300, metadata={"help": "optimiser steps"})
    batch_size: int = field(default=16, metadata={"help": "global batch per optimiser step (all processes)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step on each process"})
    max_length: int = field(default=64, metadata={"help": "max input tokens"})
    seed: int = field(default=0, metadata={"help": "seed of the head init, data order and dropout"})
    task_mixing: str = field(
        default="proportional",
        metadata={
            "help": "how often each task of a multi-task run is drawn: proportional (to its size), sqrt (∝ √size, "
            "T5's temperature 2) or equal"
        },
    )
    optimizer: str = field(default="adamw", metadata={"help": "adamw or adafactor"})
    schedule: str = field(default="linear", metadata={"help": "linear (warmup + linear decay) or rsqrt"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps spent warming up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    format: str = field(default="auto", metadata={"help": "auto, classification or text2text"})
    output_dir: str | None = field(default=None, metadata={"help": "default runs/<model>-<task>-<method>"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept"})
    resume: bool = field(default=False, metadata={"help": "continue from the last checkpoint in --output-dir"})
    max_eval: int | None = field(default=None, metadata={"help": "evaluate on the first N test examples per task"})
    train_file: str | None = field(default=None, metadata={"help": "your own CSV/JSONL training data"})
    eval_file: str | None = field(default=None, metadata={"help": "your own CSV/JSONL evaluation data"})
    text_column: str = field(default="text", metadata={"help": "text column of --train-file/--eval-file"})
    label_column: str = field(default="label", metadata={"help": "label column of --train-file/--eval-file"})
    mixed_precision: str = field(default="no", metadata={"help": "no, fp16 or bf16 (accelerate)"})
    method_config: str | None = field(
        default=None,
        metadata={
            "help": "JSON object of further fields of the method's config, e.g. '{\"unified\": true}' (adalink) or "
            '\'{"num_virtual_tokens": 64, "residual": true}\' (prompt_tuning); `adalink methods` lists methods'
        },
    )
    question_types: str | None = field(
        default=None,
        metadata={
            "help": "easyvqa only: comma-separated question types to train and test on (color, shape, yesno-color, "
            "yesno-shape; e.g. yesno-shape, the type held out of stage 1); default all"
        },
    )

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        model = Path(self.model).name if os.sep in self.model else self.model
        return Path("runs") / f"{model}-{self.task.replace(',', '+')}-{self.method}"

    def validate(self) -> None:
        checks = [
            ("max_steps", self.max_steps > 0, "a positive integer"),
            ("batch_size", self.batch_size > 0, "a positive integer"),
            ("grad_accum", self.grad_accum > 0, "a positive integer"),
            ("max_length", self.max_length > 0, "a positive integer"),
            ("rank", self.rank > 0, "a positive integer"),
            ("dropout", 0 <= self.dropout < 1, "a number in [0, 1)"),
            ("optimizer", self.optimizer in ("adamw", "adafactor"), "adamw or adafactor"),
            ("schedule", self.schedule in ("linear", "rsqrt"), "linear or rsqrt"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "a number in [0, 1)"),
            ("lr", self.lr is None or self.lr > 0, "a positive number"),
            ("head_lr", self.head_lr is None or self.head_lr > 0, "a positive number"),
            ("task_mixing", self.task_mixing in MIXING, " or ".join(MIXING)),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is invalid: expected {expected}.")
        self.method_options()  # fails early on a malformed --method-config

    def method_options(self) -> dict[str, Any]:
        """``--method-config`` as a dict of config fields (empty when not given).

        Raises:
            ValueError: If it is not a JSON object, is given with ``--method full``, or names fields the method's
                config does not have.
        """
        if not self.method_config:
            return {}
        try:
            options = json.loads(self.method_config)
        except json.JSONDecodeError as err:
            raise ValueError(f"--method-config {self.method_config!r} is not valid JSON: {err}.") from None
        if not isinstance(options, dict):
            raise ValueError(f"--method-config {self.method_config!r}: expected a JSON object of config fields.")
        if self.method == "full":
            raise ValueError("--method-config does not apply to --method full (it has no config).")
        cls = METHOD_CONFIGS.get(self.method)
        if cls is None:
            return options  # attach_method names the unknown method
        settable = cls.field_names() - {"rank", "dropout", "tasks", "modules_to_save"}
        unknown = sorted(set(options) - settable)
        if unknown:
            raise ValueError(
                f"--method-config: {unknown} are not fields {cls.__name__} lets you set here; expected some of "
                f"{sorted(settable)} (--rank, --dropout and --task set the others)."
            )
        return options

    def resume_key(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        skip = {"resume", "output_dir", "save_every", "keep_checkpoints", "max_eval"}
        key = {k: v for k, v in asdict(self).items() if k not in skip}
        if key["task_mixing"] == "proportional":  # checkpoints from before --task-mixing existed still resume
            del key["task_mixing"]
        for name in ("model", "train_file", "eval_file"):  # one file, however it is spelled
            if key[name] and os.path.exists(key[name]):
                key[name] = os.path.abspath(key[name])
        return key


def load_tasks(args: TrainArgs) -> list[TextClassificationData | VQAData]:
    if args.train_file:
        data = load_file_task(
            args.train_file, args.eval_file, text_column=args.text_column, label_column=args.label_column
        )
        return [data]
    names = [n.strip() for n in args.task.split(",") if n.strip()]
    known = (*TASK_NAMES, VQA_TASK)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"--task {args.task!r}: unknown task(s) {unknown}; expected a comma-separated list of {list(known)}, "
            "or your own data with --train-file."
        )
    if VQA_TASK in names:
        if len(names) > 1:
            raise ValueError(f"--task {VQA_TASK} (images + questions) cannot be mixed with text tasks {names}.")
        data = load_easyvqa()
        if args.question_types:
            data = data.with_question_types([t.strip() for t in args.question_types.split(",") if t.strip()])
        return [data]
    if args.question_types:
        raise ValueError(f"--question-types {args.question_types!r} applies only to --task {VQA_TASK}, not {names}.")
    return [load_text_task(name) for name in names]


def setup_model(model: str, format_name: str, tasks: list[TaskInfo]) -> tuple[str, Format, Any]:
    """(checkpoint path, format, tokenizer) of a run. easyvqa runs on the stage-1 TinyVLM built from MiniLM."""
    from ..models import resolve_model

    if format_name == "vqa" or any(t.name == VQA_TASK for t in tasks):
        from ..vision.pretrain import cached_pretrained_vlm
        from ..vision.vlm import TinyVLMConfig, read_vlm_config, resolve_text_model_path
        from .vqa import VQAFormat

        path = str(cached_pretrained_vlm()) if model in ("minilm", VLM_ALIAS) else model
        config = TinyVLMConfig.from_dict(read_vlm_config(Path(path))["config"])
        return (
            path,
            VQAFormat(tasks, image_size=config.image_size),
            _tokenizer(resolve_text_model_path(config.text_model)),
        )
    resolved = resolve_model(model)
    return resolved.path, make_format(format_name, tasks, resolved.kind), _tokenizer(resolved.path)


def build_optimizer(args: TrainArgs, params: list[torch.nn.Parameter], head: set[int]) -> torch.optim.Optimizer:
    """The optimiser over ``params``; those whose id is in ``head`` (the new head) get ``--head-lr`` when given."""
    lr = args.lr or default_lr(args.method)
    groups: list[dict[str, Any]] = [{"params": params}]
    if args.head_lr is not None:
        body, heads = [p for p in params if id(p) not in head], [p for p in params if id(p) in head]
        groups = [g for g in ({"params": body}, {"params": heads, "lr": args.head_lr}) if g["params"]]
    if args.optimizer == "adafactor":  # the AdaLink paper's optimiser (§4.1.2), with an explicit learning rate
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, relative_step=False, scale_parameter=False, warmup_init=False)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)


def head_parameter_ids(model: torch.nn.Module, fmt: Format) -> set[int]:
    """ids of the parameters of the format's new head modules (trained by every method, counted apart).

    ``model`` is a :class:`PeftModel` or, for full tuning, the plain transformers model itself (whose own
    ``base_model`` attribute is its backbone, which has no head: it must not be looked at).
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return {id(p) for name in fmt.head_modules(base) for p in base.get_submodule(name).parameters()}


def _schedule(args: TrainArgs, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    from transformers import get_inverse_sqrt_schedule, get_linear_schedule_with_warmup

    warmup = int(args.warmup_ratio * args.max_steps)
    if args.schedule == "rsqrt":  # linear warmup then reciprocal square root decay (paper §4.1.2)
        return get_inverse_sqrt_schedule(optimizer, num_warmup_steps=max(1, warmup))
    return get_linear_schedule_with_warmup(optimizer, warmup, args.max_steps)


def _tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
    return tokenizer


def _caller(model: torch.nn.Module, task_aware: bool):
    def call(inputs: dict[str, torch.Tensor], task_ids: torch.Tensor, **kwargs: Any):
        return model(**inputs, task=task_ids, **kwargs) if task_aware else model(**inputs, **kwargs)

    return call


def _generator(model: torch.nn.Module, task_aware: bool):
    def generate(inputs: dict[str, torch.Tensor], task_ids: torch.Tensor, **kwargs: Any):
        return model.generate(**inputs, task=task_ids, **kwargs) if task_aware else model.generate(**inputs, **kwargs)

    return generate


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def train(args: TrainArgs) -> dict[str, Any]:
    """Train, evaluate on the test split(s), save the adapter, ``run.json`` and ``metrics.json``."""
    from accelerate import Accelerator

    args.validate()
    # On a machine without CUDA, gloo on CPU; without cpu=True accelerate would start lone single-process runs.
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != world:
        raise ValueError(
            f"The launcher started {launched} processes but accelerate joined {world}: each would train alone "
            "into the same directory. Launch with `accelerate launch --multi_gpu --num_processes N -m adalink train`."
        )
    if args.batch_size % (world * args.grad_accum):
        raise ValueError(
            f"--batch-size {args.batch_size} must split evenly over {world} process(es) "
            f"x --grad-accum {args.grad_accum}."
        )
    out = args.resolved_output_dir()
    datasets = load_tasks(args)
    model_path, fmt, tokenizer = setup_model(
        args.model, args.format, [TaskInfo(d.name, d.label_names) for d in datasets]
    )
    base = fmt.build_base(model_path, seed=args.seed)
    attached = attach_method(
        args.method,
        base,
        rank=args.rank,
        dropout=args.dropout,
        tasks=[d.name for d in datasets],
        heads=fmt.head_modules(base),
        modalities=fmt.modalities,
        options=args.method_options(),
    )
    model = attached.model
    named_trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer, scheduler = build_optimizer(args, list(named_trainable.values()), head_parameter_ids(model, fmt)), None
    scheduler = _schedule(args, optimizer)
    stream = MixedTaskStream(
        [d.train for d in datasets], seed=args.seed, global_batch_size=args.batch_size, mixing=args.task_mixing
    )

    start, tokens, seconds, history = 0, 0, 0.0, []
    checkpoint_root = out / "checkpoints"
    checkpoint = latest_checkpoint(checkpoint_root) if args.resume else None
    if args.resume and checkpoint is None:
        accelerator.print(f"--resume: no checkpoint in {checkpoint_root}; starting from step 0.")
    if checkpoint is not None:
        tensors, optim_state, sched_state, state = read_checkpoint(checkpoint)
        key = args.resume_key()
        if state["args"] != key:
            changed = sorted(k for k in state["args"].keys() | key.keys() if state["args"].get(k) != key.get(k))
            raise ValueError(
                f"--resume: {checkpoint} was made with different settings for {changed}; pass the same ones."
            )
        with torch.no_grad():
            for name, param in named_trainable.items():
                param.copy_(tensors[name])
        optimizer.load_state_dict(optim_state)
        scheduler.load_state_dict(sched_state)
        start, tokens, seconds, history = state["step"], state["tokens"], state["train_seconds"], state["history"]
        restore_rng(checkpoint, rank)
        accelerator.print(f"Resuming from {checkpoint} (step {start}).")
    else:
        torch.manual_seed(args.seed * 7919 + rank)  # dropout masks: per process, reproducible
    model, optimizer = accelerator.prepare(model, optimizer)
    call = _caller(model, attached.task_aware)

    model.train()
    micro = args.batch_size // world // args.grad_accum
    progress = progress_bar(
        range(start, args.max_steps),
        enabled=accelerator.is_main_process,
        initial=start,
        total=args.max_steps,
        desc="train",
        unit="step",
    )
    for step in progress:
        began = time.perf_counter()
        items = stream.batch(step, rank=rank, world_size=world)
        step_loss, step_tokens = torch.zeros((), device=accelerator.device), 0
        batches = [
            _to(fmt.collate(items[i * micro : (i + 1) * micro], tokenizer, args.max_length), accelerator.device)
            for i in range(args.grad_accum)
        ]
        # Mean over the GLOBAL batch's examples (classification) or target tokens (text-to-text), whatever the split
        # into processes and micro-batches: each sums its losses and divides by the global count; DDP's gradient
        # average over processes is undone by the factor `world`.
        count = sum(fmt.count(b) for b in batches)
        global_count = int(accelerator.reduce(torch.tensor(count, device=accelerator.device), reduction="sum"))
        for i, batch in enumerate(batches):
            sync = nullcontext() if i == args.grad_accum - 1 else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                loss = fmt.loss(call, batch) * world / max(global_count, 1)
                accelerator.backward(loss)
            step_loss += loss.detach()
            step_tokens += int(batch["attention_mask"].sum())
        mean_loss = float(accelerator.reduce(step_loss, reduction="mean"))
        if not math.isfinite(mean_loss):
            last = latest_checkpoint(checkpoint_root)
            raise TrainingDivergedError(
                f"The loss became {mean_loss} at step {step + 1}; stopped without applying it. Last good checkpoint: "
                f"{last if last else 'none yet'}. Try a lower --lr."
            )
        if args.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - began
        tokens += int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), reduction="sum"))
        history.append(round(mean_loss, 6))
        progress.set_postfix(
            loss=f"{sum(history[-20:]) / len(history[-20:]):.4f}",
            lr=f"{scheduler.get_last_lr()[0]:.2e}",
            tok_s=f"{tokens / max(seconds, 1e-9):.0f}",
        )
        if (step + 1) % args.save_every == 0 or step + 1 == args.max_steps:
            _checkpoint(
                accelerator,
                model,
                checkpoint_root,
                step + 1,
                optimizer,
                scheduler,
                args,
                {"tokens": tokens, "train_seconds": seconds, "history": history},
            )
    progress.close()

    unwrapped = accelerator.unwrap_model(model)
    metrics: dict[str, Any] = {}
    if accelerator.is_main_process:
        rouge_l: dict[str, float] = {}
        scores = evaluate(
            unwrapped,
            attached.task_aware,
            fmt,
            tokenizer,
            datasets,
            split="test",
            max_examples=args.max_eval,
            max_length=args.max_length,
            rouge_l=rouge_l,
        )
        metrics = _metrics(args, datasets, scores, unwrapped, fmt, tokens, seconds, history)
        if rouge_l:
            metrics["rouge_l"] = rouge_l
        _save_outputs(out, args, model_path, fmt, attached.saves_adapter, unwrapped, tokenizer, metrics)
        print(
            f"{fmt.name} {metrics['metric']} on test: {metrics['score']:.4f} "
            f"({', '.join(f'{k} {v:.4f}' for k, v in metrics['per_task'].items())}); saved to {out}"
        )
    accelerator.wait_for_everyone()
    return metrics


def _checkpoint(accelerator, model, root: Path, step: int, optimizer, scheduler, args: TrainArgs, extra: dict) -> None:
    from accelerate.utils import gather_object

    rng_states = gather_object([rng_state()]) if accelerator.num_processes > 1 else [rng_state()]
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        trainable = {n: p for n, p in unwrapped.named_parameters() if p.requires_grad}
        write_checkpoint(
            root,
            step,
            trainable=trainable,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng_states=rng_states,
            state={"args": args.resume_key(), **extra},
            keep=args.keep_checkpoints,
        )
    accelerator.wait_for_everyone()


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    task_aware: bool,
    fmt: ClassificationFormat | TextToTextFormat,
    tokenizer,
    datasets: list[TextClassificationData],
    *,
    split: str,
    max_examples: int | None,
    max_length: int,
    batch_size: int = 64,
    rouge_l: dict[str, float] | None = None,
) -> dict[str, float]:
    """Accuracy (exact match for text-to-text) per task on ``split``.

    For text-to-text, ``rouge_l`` (if given) receives each task's mean ROUGE-L F1 of the generated answers against
    the label words (``rouge-score``, the survey's metric for generative tasks), which credits near misses.
    """
    was_training = model.training
    model.eval()
    scores = {}
    for task, data in enumerate(datasets):
        examples = list(getattr(data, split))[:max_examples]
        correct, generated = 0, []
        for start in progress_bar(range(0, len(examples), batch_size), desc=f"eval {data.name}", leave=False):
            chunk = [TaskExample(task, e) for e in examples[start : start + batch_size]]
            predicted = predict_batch(model, task_aware, fmt, tokenizer, chunk, max_length, generated)
            correct += sum(int(p == item.example.label) for p, item in zip(predicted, chunk, strict=True))
        scores[data.name] = correct / max(1, len(examples))
        if rouge_l is not None and isinstance(fmt, TextToTextFormat):
            references = [data.label_names[e.label] for e in examples]
            rouge_l[data.name] = _rouge_l(generated, references)
    model.train(was_training)
    return scores


def predict_batch(
    model, task_aware: bool, fmt, tokenizer, items: list[TaskExample], max_length: int, details: list | None = None
) -> list[int]:
    """Label index (within each example's task) per item; -1 when a generated answer matches no label."""
    device = next(model.parameters()).device
    if isinstance(fmt, ClassificationFormat):
        batch = _to(fmt.collate(items, tokenizer, max_length), device)
        labels, probabilities = fmt.predict(_caller(model, task_aware), batch)
        if details is not None:
            details.extend(probabilities)
        return labels
    batch = _to(fmt.generation_batch(items, tokenizer, max_length), device)
    inputs = {k: v for k, v in batch.items() if k != "task_ids"}
    sequences = _generator(model, task_aware)(
        inputs,
        batch["task_ids"],
        max_new_tokens=fmt.max_new_tokens(tokenizer),
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    new_tokens = sequences if fmt.encoder_decoder else sequences[:, inputs["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    if details is not None:
        details.extend(texts)
    return [fmt.parse(item.task, text) for item, text in zip(items, texts, strict=True)]


def _metrics(args, datasets, scores, model, fmt, tokens: int, seconds: float, history: list[float]) -> dict[str, Any]:
    params = {id(p): p for p in model.parameters()}.values()
    heads = head_parameter_ids(model, fmt)
    trainable = [p for p in params if p.requires_grad]
    return {
        "score": sum(scores.values()) / len(scores),
        "metric": "exact_match" if fmt.name == "text2text" else "accuracy",
        "per_task": scores,
        "majority_baseline": {d.name: d.majority_baseline(split="test", max_examples=args.max_eval) for d in datasets},
        "trainable_params": sum(p.numel() for p in trainable if id(p) not in heads),
        "head_params": sum(p.numel() for p in trainable if id(p) in heads),
        "total_params": sum(p.numel() for p in params),
        "train_seconds": round(seconds, 3),
        "train_tokens": tokens,
        "train_tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
        "steps": args.max_steps,
        "initial_loss": _mean(history[:10]),  # mean of the first 10 steps
        "final_loss": _mean(history[-10:]),  # mean of the last 10 steps
        "model": args.model,
        "method": args.method,
        "tasks": [d.name for d in datasets],
        "format": fmt.name,
    }


def _rouge_l(generated: list[str], references: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = zip(generated, references, strict=True)
    values = [scorer.score(ref, gen.strip().split("\n")[0]).get("rougeL").fmeasure for gen, ref in pairs]
    return sum(values) / max(1, len(values))


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, path)


def _save_outputs(out: Path, args, model_path: str, fmt, saves_adapter: bool, model, tokenizer, metrics) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if saves_adapter:
        model.save_pretrained(out)
    else:
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
    run = {
        "model": args.model,
        "model_path": model_path,
        "format": fmt.name,
        "tasks": [{"name": t.name, "label_names": list(t.label_names)} for t in fmt.tasks],
        "method": args.method,
        "saves_adapter": saves_adapter,
        "seed": args.seed,
        "max_length": args.max_length,
        "args": asdict(args),
    }
    _write_json(out / RUN_FILE, run)
    _write_json(out / METRICS_FILE, metrics)
