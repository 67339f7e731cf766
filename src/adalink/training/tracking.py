"""Experiment trackers for ``adalink train --report-to``: TensorBoard, MLflow, trackio and Weights & Biases through
accelerate's tracker API (``Accelerator(log_with=...)``, ``init_trackers``, ``log``; :func:`end_tracking` finishes
them), all offline.

What is logged, on the main process only:

* every step: ``train/loss`` (the step's mean loss), ``train/learning_rate`` and ``train/tokens_per_second``
  (running average). Every step rather than every N: a step costs far more than one scalar write, and the per-step
  loss is what ``metrics.json`` and the checkpoints keep too, so the curves agree with them point for point;
* every ``--eval-every``: ``eval/score`` (mean over tasks) and ``eval/<task>``; at the end ``test/score`` and
  ``test/<task>`` (of the weights saved in the run directory);
* once, as hyperparameters: every field of :class:`~adalink.training.args.TrainArgs` (None written as ``"None"``:
  TensorBoard's hparams and MLflow's params take no None).

Logs go under ``--logging-dir`` (default ``<output_dir>/logs``; TensorBoard's in ``<logs>/<run name>``, the run
name being the output directory's name). Nothing reaches the network: MLflow writes a local
file store ``<logs>/mlruns`` (``MLFLOW_ALLOW_FILE_STORE=true``, which MLflow 3 asks for), Weights & Biases runs in
offline mode (``WANDB_MODE=offline``, files under ``<logs>/wandb``), trackio keeps its SQLite files in
``<logs>/trackio`` (``TRACKIO_DIR``). A resumed run starts a new tracker run that logs from the resumed step on.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

__all__ = [
    "TRACKERS",
    "end_tracking",
    "log_scores",
    "log_step",
    "logging_dir",
    "start_tracking",
    "tracker_names",
    "trackers",
]

TRACKERS = ("tensorboard", "mlflow", "trackio", "wandb")
# tracker -> the packages that provide it (any one will do)
_PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboardX"),
    "mlflow": ("mlflow",),
    "trackio": ("trackio",),
    "wandb": ("wandb",),
}


def tracker_names(report_to: str) -> list[str]:
    """The trackers ``--report-to`` names, in :data:`TRACKERS` order; ``all`` = every installed one, ``none`` = [].

    Raises:
        ValueError: An unknown name, or ``none`` beside others.
    """
    names = {n.strip().lower() for n in report_to.split(",") if n.strip()}
    unknown = sorted(names - {*TRACKERS, "all", "none"})
    if unknown or not names or ("none" in names and len(names) > 1):
        raise ValueError(
            f"--report-to {report_to!r} is invalid: expected none, all, or a comma-separated list of "
            f"{', '.join(TRACKERS)}."
        )
    if "all" in names:
        return [t for t in TRACKERS if _installed(t)]
    return [t for t in TRACKERS if t in names]


def trackers(report_to: str) -> list[str]:
    """:func:`tracker_names` of ``report_to``, each checked to be installed (before anything is trained).

    Raises:
        ImportError: A tracker's package is missing (the message has the pip line), or ``all`` finds none.
    """
    names = tracker_names(report_to)
    missing = [t for t in names if not _installed(t)]
    if missing:
        extras = " ".join(f"'adalink[{t}]'" for t in missing)
        raise ImportError(f"--report-to {report_to}: {', '.join(missing)} not installed; pip install {extras}")
    if not names and "all" in report_to.lower():
        raise ImportError(
            f"--report-to {report_to}: no tracker is installed; pip install 'adalink[tensorboard]' "
            f"(or {', '.join(TRACKERS[1:])})"
        )
    return names


def logging_dir(output_dir: Path, chosen: str | None) -> Path:
    """Where the trackers write: ``chosen`` (``--logging-dir``), else ``<output_dir>/logs``."""
    return Path(chosen) if chosen else output_dir / "logs"


def start_tracking(accelerator, names: list[str], logs: Path, run_name: str, config: dict[str, Any]) -> None:
    """Point the trackers ``names`` at local storage under ``logs`` and start a run ``run_name`` with ``config`` (the
    run's options) as its hyperparameters. No-op without trackers."""
    if not names:
        return
    logs = logs.resolve()
    init_kwargs: dict[str, dict[str, Any]] = {}
    if "mlflow" in names:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store without it
        import mlflow

        mlflow.set_tracking_uri((logs / "mlruns").as_uri())
    if "wandb" in names:
        os.environ["WANDB_MODE"] = "offline"
        (logs / "wandb").mkdir(parents=True, exist_ok=True)
        init_kwargs["wandb"] = {"mode": "offline", "dir": str(logs / "wandb")}
    if "trackio" in names:
        os.environ["TRACKIO_DIR"] = str(logs / "trackio")  # read when trackio is first imported
    hparams = {k: "None" if v is None else v for k, v in config.items()}
    accelerator.init_trackers(run_name, config=hparams, init_kwargs=init_kwargs)


def log_step(accelerator, step: int, *, loss: float, learning_rate: float, tokens_per_second: float) -> None:
    accelerator.log(
        {"train/loss": loss, "train/learning_rate": learning_rate, "train/tokens_per_second": tokens_per_second},
        step=step,
    )


def log_scores(accelerator, split: str, step: int, per_task: dict[str, float]) -> None:
    """``<split>/score`` (the mean over tasks) and ``<split>/<task>`` of every task."""
    values = {f"{split}/score": sum(per_task.values()) / len(per_task)}
    values.update({f"{split}/{task}": score for task, score in per_task.items()})
    accelerator.log(values, step=step)


def end_tracking(accelerator) -> None:
    """Finish every tracker's run (flush and close its files). Not ``accelerator.end_training()``: that also tears
    down the process group, which the run's last ``wait_for_everyone`` and in-process callers still use."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers.clear()


def _installed(tracker: str) -> bool:
    return any(importlib.util.find_spec(package) is not None for package in _PACKAGES[tracker])
