"""``adalink train``: the training loop, as a recipe of small steps composed from the harness's pieces.

The loop runs under ``accelerate`` (one process, or several with ``accelerate launch``); the data order is a pure
function of (seed, step) (:mod:`.stream`), so checkpoints need no data-loader state and a resumed run matches an
uninterrupted one bit for bit on CPU.

With ``--eval-every`` the main process scores the validation split every N steps (:mod:`.selection`: best weights,
early stopping), the other processes wait for its scores. Evaluation draws no random numbers in the training stream:
the RNG state is taken before and put back after it, so the dropout masks, and the weights, of a run with evaluation
are those of the same run without it. Trackers (:mod:`.tracking`) receive the losses, scores and configuration.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import GenerationData, TextClassificationData, VQAData
from ..errors import AdalinkError, UsageError
from ..methods.base import MethodConfig
from ..models.precision import check_trainable_dtype
from ..peft_model import PeftModel, get_peft_model
from ..process_memory import StepPeak
from ..progress import progress_bar
from ..runs.loading import ModelSetup, load_tasks, setup_model
from ..tasks.calls import model_call, to_device
from ..tasks.evaluation import evaluate
from ..tasks.formats import TaskInfo
from .args import OptimOptions, TrainArgs
from .checkpoints import latest_checkpoint, load_trainable, rng_state, set_rng_state, trainable_tensors
from .config_file import CONFIG_FILE, write_config
from .methods import resolve_method_config
from .optimizer import build_optimizer, build_schedule, head_parameter_ids
from .outputs import run_metrics, save_outputs, stalled_loss_warning
from .resumption import Totals, load_sharded_optimizer, resume_or_start, save_checkpoint
from .selection import Selection
from .sharding import check_sharded_run, enable_fsdp_on_cpu, full_trainable, is_sharded
from .stream import MixedTaskStream
from .tracking import end_tracking, log_scores, log_step, logging_dir, start_tracking, trackers

if TYPE_CHECKING:
    from accelerate import Accelerator
    from tqdm import tqdm

    from ..tasks.formats import ModelCall

__all__ = ["LAST_DIR", "TrainingDivergedError", "train"]

LAST_DIR = "last"  # with --eval-every: the last step's adapter, beside the best one
Datasets = list[TextClassificationData | VQAData | GenerationData]  # a run's tasks, of one format


class TrainingDivergedError(AdalinkError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class _Run:
    """What one training run works on; ``model`` and ``optimizer`` are accelerate's wrappers once prepared."""

    setup: ModelSetup
    model: torch.nn.Module  # a PeftModel (full tuning too), or accelerate's wrapper of it once prepared
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    stream: MixedTaskStream
    checkpoints: Path
    selection: Selection  # --eval-every's scores, best weights and early stopping
    unsharded: _Run | None = None  # a sharded run's unsharded copy on the main process, built once, for evaluation
    memory: StepPeak = field(default_factory=StepPeak)  # this process's peak during the optimiser steps alone


def train(args: TrainArgs) -> dict[str, Any]:
    """Train, evaluate on the test split(s), save the adapter, ``config.yaml``, ``run.json`` and ``metrics.json``."""
    args.validate()
    out = args.resolved_output_dir()
    names = trackers(args.run.report_to)  # a missing tracker package is named before anything is loaded
    accelerator = _accelerator(args, names)
    datasets = load_tasks(args.data)
    if args.data.train_file and accelerator.is_main_process:  # say what the task is called (results, adapters, ...)
        named = "--task-name" if args.data.task_name else "its file's name; --task-name sets another"
        print(f"task {datasets[0].name!r} from {args.data.train_file} (named by {named})", flush=True)
    run = _build(args, datasets)
    totals, sharded_state = resume_or_start(args, accelerator, run)
    if accelerator.is_main_process:  # after a refused --resume, the run's own config.yaml stays
        out.mkdir(parents=True, exist_ok=True)
        assert isinstance(run.model, PeftModel)  # not yet wrapped by accelerate
        write_config(out / CONFIG_FILE, args, run.model.peft_config)
    run.model, run.optimizer = accelerator.prepare(run.model, run.optimizer)
    if sharded_state is not None:  # a sharded optimiser takes its state once its parameters are sharded
        load_sharded_optimizer(accelerator, run, sharded_state)
    resumed_at = totals.step if args.run.resume else None
    logs = logging_dir(out, args.run.logging_dir)
    start_tracking(accelerator, names, logs, out.resolve().name, args.options(), resumed_at=resumed_at)
    try:
        _train_steps(args, accelerator, run, datasets, totals)
        assert args.optim.lr is not None  # resolved by _build
        stalled = stalled_loss_warning(totals.history, args.optim.lr, args.optim.max_steps)
        if stalled and accelerator.is_main_process:
            print(stalled, file=sys.stderr, flush=True)
        metrics = _evaluate_and_save(args, accelerator, run, datasets, totals)
    finally:
        end_tracking(accelerator)
    accelerator.wait_for_everyone()
    return metrics


def _accelerator(args: TrainArgs, log_with: list[str]) -> Accelerator:
    """The process group, refused when the launcher and accelerate disagree or the batch does not split evenly."""
    from accelerate import Accelerator

    # On a machine without CUDA, gloo on CPU; without cpu=True accelerate would start lone single-process runs.
    try:
        accelerator = Accelerator(
            mixed_precision=args.run.mixed_precision,
            cpu=not torch.cuda.is_available(),
            log_with=log_with or None,
            project_dir=str(logging_dir(args.resolved_output_dir(), args.run.logging_dir)),
        )
    except ValueError as err:  # accelerate refuses the settings, e.g. an unknown --mixed-precision mode
        raise UsageError(str(err)) from err
    world = accelerator.num_processes
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != world:
        raise UsageError(
            f"The launcher started {launched} processes but accelerate joined {world}: each would train alone "
            "into the same directory. Launch with `accelerate launch --multi_gpu --num_processes N -m adalink train`."
        )
    if args.optim.batch_size % (world * args.optim.grad_accum):
        raise UsageError(
            f"--batch-size {args.optim.batch_size} must split evenly over {world} process(es) "
            f"x --grad-accum {args.optim.grad_accum}."
        )
    enable_fsdp_on_cpu(accelerator)  # FSDP asked for on a machine without CUDA (accelerate would run DDP)
    check_sharded_run(args.base, accelerator)
    return accelerator


def _build(args: TrainArgs, datasets: Datasets) -> _Run:
    """The base model with the method attached, its optimiser and schedule, and the stream of training batches."""
    setup = setup_model(args.base.model, args.data.format, [TaskInfo(d.name, d.label_names) for d in datasets])
    loading = args.base.loading  # --dtype, --quantize, --gradient-checkpointing
    base = setup.build_base(seed=args.run.seed, loading=loading)
    config = method_config(args, setup, datasets, base)
    if args.optim.lr is None:  # the method's rate for this config; run.json and config.yaml record the resolved value
        args.optim.lr = config.learning_rate()
    model = get_peft_model(base, config)
    check_trainable_dtype(model, loading, args.tuning.method)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(args.optim, trainable, head_parameter_ids(model, setup.fmt), lr=args.optim.lr)
    scheduler = build_schedule(args.optim, optimizer)
    stream = MixedTaskStream(
        [d.train for d in datasets],
        seed=args.run.seed,
        global_batch_size=args.optim.batch_size,
        mixing=args.data.task_mixing,
    )
    checkpoints = args.resolved_output_dir() / "checkpoints"
    selection = Selection(args.run.eval_every, args.run.early_stopping_patience, args.optim.max_steps)
    return _Run(setup, model, optimizer, scheduler, stream, checkpoints, selection)


def method_config(args: TrainArgs, setup: ModelSetup, datasets: Datasets, base: torch.nn.Module) -> MethodConfig:
    """The method's config this run trains: its own defaults, with what the command line sets (recorded in
    ``run.json`` and ``metrics.json``)."""
    tuning = args.tuning
    return resolve_method_config(
        tuning.method,
        rank=tuning.rank,
        dropout=tuning.dropout,
        tasks=[d.name for d in datasets],
        heads=setup.fmt.head_modules(base),
        modalities=setup.fmt.modalities,
        options=tuning.method_options(),
    )


def _train_steps(args: TrainArgs, accelerator: Accelerator, run: _Run, datasets: Datasets, totals: Totals) -> None:
    """Steps ``totals.step + 1 .. --max-steps`` with a progress bar, a validation score every ``--eval-every`` and a
    checkpoint every ``--save-every``; early stopping ends them sooner (and checkpoints where it stopped)."""
    if run.selection.stopped:  # resumed after early stopping had ended the run
        return
    call = model_call(run.model)
    run.model.train()
    progress = progress_bar(
        range(totals.step, args.optim.max_steps),
        enabled=accelerator.is_main_process,
        initial=totals.step,
        total=args.optim.max_steps,
        desc="train",
        unit="step",
    )
    run.memory.restart()  # loading and preparing the model stay out of the training peak
    for step in progress:
        began = time.perf_counter()
        mean_loss, step_tokens = _accumulate_gradients(args, accelerator, run, call, step)
        if not math.isfinite(mean_loss):
            last = latest_checkpoint(run.checkpoints)
            raise TrainingDivergedError(
                f"The loss became {mean_loss} at step {step + 1}; stopped without applying it. Last good checkpoint: "
                f"{last if last else 'none yet'}. Try a lower --lr."
            )
        _apply_update(args.optim, accelerator, run)
        totals.seconds += time.perf_counter() - began
        run.memory.after_update()
        totals.tokens += int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), reduction="sum"))
        totals.history.append(round(mean_loss, 6))
        totals.step = step + 1
        _report_step(accelerator, run, totals, progress)
        if run.selection.due(totals.step):
            _validate(args, accelerator, run, datasets, totals.step, progress)
            run.memory.restart()
        if totals.step % args.run.save_every == 0 or totals.step == args.optim.max_steps or run.selection.stopped:
            save_checkpoint(args, accelerator, run, totals)
            run.memory.restart()
        if run.selection.stopped:
            break
    progress.close()


def _report_step(accelerator: Accelerator, run: _Run, totals: Totals, progress: tqdm) -> None:
    """The progress bar's postfix (mean loss of the last 20 steps) and the trackers' scalars of this step."""
    recent = totals.history[-20:]
    learning_rate = float(run.scheduler.get_last_lr()[0])
    tokens_per_second = totals.tokens / max(totals.seconds, 1e-9)
    postfix = {
        "loss": f"{sum(recent) / len(recent):.4f}",
        "lr": f"{learning_rate:.2e}",
        "tok_s": f"{tokens_per_second:.0f}",
    }
    if run.selection.history:
        postfix["val"] = f"{run.selection.history[-1]['score']:.4f}"
    progress.set_postfix(postfix)
    log_step(
        accelerator,
        totals.step,
        loss=totals.history[-1],
        learning_rate=learning_rate,
        tokens_per_second=tokens_per_second,
    )


def _validate(
    args: TrainArgs, accelerator: Accelerator, run: _Run, datasets: Datasets, step: int, progress: tqdm
) -> None:
    """Score the validation split on the main process (the others receive its scores; a sharded run's weights are
    gathered into its unsharded copy), record them in ``run.selection`` (keeping the weights if they are the best
    yet), print and log them. The RNG state is put back afterwards, so evaluation (and building the copy) does not
    shift the training's dropout masks."""
    training_rng = rng_state()
    scored = _unsharded_copy(args, accelerator, run, datasets) if is_sharded(accelerator) else run
    unwrapped = accelerator.unwrap_model(scored.model)
    scores = None
    if accelerator.is_main_process:
        scores = evaluate(
            unwrapped,
            run.setup.fmt,
            run.setup.tokenizer,
            datasets,
            split="validation",
            max_examples=args.run.max_eval,
            max_length=args.data.max_length,
        )
    set_rng_state(training_rng)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        scores = broadcast_object_list([scores])[0]
    assert scores is not None  # the main process's, on every process
    keep = accelerator.is_main_process  # only the main process writes checkpoints and outputs
    selection = run.selection
    selection.record(step, scores, lambda: trainable_tensors(unwrapped) if keep else None)
    log_scores(accelerator, "eval", step, scores)
    if accelerator.is_main_process:
        stop = f"; no better score in {selection.patience} evaluations: stopping early" if selection.stopped else ""
        progress.write(
            f"step {step}: validation {selection.history[-1]['score']:.4f} "
            f"({', '.join(f'{k} {v:.4f}' for k, v in scores.items())}); "
            f"best {selection.best_score:.4f} at step {selection.best_step}{stop}"
        )


def _accumulate_gradients(
    args: TrainArgs, accelerator: Accelerator, run: _Run, call: ModelCall, step: int
) -> tuple[float, int]:
    """Forward and backward over this process's micro-batches of ``step``; (mean loss of all processes, tokens).

    The loss is the mean over the GLOBAL batch's examples (classification) or target tokens (text-to-text), whatever
    the split into processes and micro-batches: each sums its losses and divides by the global count; DDP's gradient
    average over processes is undone by the factor ``world``.
    """
    world, fmt = accelerator.num_processes, run.setup.fmt
    micro = args.optim.batch_size // world // args.optim.grad_accum
    items = run.stream.batch(step, rank=accelerator.process_index, world_size=world)
    batches = [
        to_device(
            fmt.collate(items[i * micro : (i + 1) * micro], run.setup.tokenizer, args.data.max_length),
            accelerator.device,
        )
        for i in range(args.optim.grad_accum)
    ]
    count = sum(fmt.count(b) for b in batches)
    global_count = int(accelerator.reduce(torch.tensor(count, device=accelerator.device), reduction="sum"))
    step_loss, step_tokens = torch.zeros((), device=accelerator.device), 0
    for i, batch in enumerate(batches):
        sync = nullcontext() if i == args.optim.grad_accum - 1 else accelerator.no_sync(run.model)
        with sync, accelerator.autocast():
            loss = fmt.loss(call, batch) * world / max(global_count, 1)
            accelerator.backward(loss)
        step_loss += loss.detach()
        step_tokens += int(batch["attention_mask"].sum())
    return float(accelerator.reduce(step_loss, reduction="mean")), step_tokens


def _apply_update(optim: OptimOptions, accelerator: Accelerator, run: _Run) -> None:
    if optim.max_grad_norm > 0:
        accelerator.clip_grad_norm_(run.model.parameters(), optim.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)


def _unsharded_copy(args: TrainArgs, accelerator: Accelerator, run: _Run, datasets: Datasets) -> _Run:
    """On the main process, the run's unsharded copy (built on first use) holding the trained weights every process
    gathered; elsewhere ``run``. A collective: every process calls it."""
    tensors = full_trainable(accelerator, run.model)
    if not accelerator.is_main_process:
        return run
    if run.unsharded is None:
        copy = _build(args, datasets)
        run.unsharded = replace(run, model=copy.model)
    load_trainable(run.unsharded.model, tensors, "the sharded run's gathered weights")
    return run.unsharded


def _evaluate_and_save(
    args: TrainArgs, accelerator: Accelerator, run: _Run, datasets: Datasets, totals: Totals
) -> dict[str, Any]:
    """On the main process: with ``--eval-every`` keep the last weights under ``last/`` and go back to the best ones;
    score the test split(s), write the outputs and print the score; elsewhere ``{}``."""
    memory = run.memory  # the training peak (an unsharded copy below has none)
    if is_sharded(accelerator):  # a sharded model's forward pass is collective: use an unsharded copy on the main one
        run = _unsharded_copy(args, accelerator, run, datasets)
    unwrapped = accelerator.unwrap_model(run.model)
    if not accelerator.is_main_process:
        return {}
    path, fmt, tokenizer = run.setup
    out, selection = args.resolved_output_dir(), run.selection
    if selection.enabled:
        assert selection.best_weights is not None  # training recorded at least one evaluation on this process
        save_outputs(out / LAST_DIR, args, path, fmt, unwrapped, None)
        load_trainable(unwrapped, selection.best_weights, f"the best weights (step {selection.best_step})")
    rouge_l: dict[str, float] = {}
    exact_match: dict[str, float] = {}
    scores = evaluate(
        unwrapped,
        fmt,
        tokenizer,
        datasets,
        split="test",
        max_examples=args.run.max_eval,
        max_length=args.data.max_length,
        rouge_l=rouge_l,
        exact_match=exact_match,
    )
    metrics = run_metrics(
        args, datasets, scores, unwrapped, fmt, tokens=totals.tokens, seconds=totals.seconds, history=totals.history
    )
    metrics["train_peak_rss_bytes"] = memory.rss_bytes  # this process, optimiser steps only (None: not resettable)
    metrics["train_peak_gpu_bytes"] = memory.gpu_bytes
    if rouge_l:
        metrics["rouge_l"] = rouge_l
    if exact_match and fmt.name == "sft":  # text2text's score is already exact match
        metrics["exact_match"] = exact_match
    if selection.enabled:
        metrics.update(selection.summary(), last_adapter=LAST_DIR)
    log_scores(accelerator, "test", totals.step, scores)
    save_outputs(out, args, path, fmt, unwrapped, metrics)
    best = f" with the weights of step {selection.best_step} (best on validation)" if selection.enabled else ""
    print(
        f"{fmt.name} {metrics['metric']} on test: {metrics['score']:.4f} "
        f"({', '.join(f'{k} {v:.4f}' for k, v in metrics['per_task'].items())}){best}; saved to {out}"
    )
    return metrics
