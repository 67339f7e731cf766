"""Experiment trackers for ``adalink train --report-to``: TensorBoard, MLflow, trackio and Weights & Biases through
accelerate's tracker API (``Accelerator(log_with=...)``, ``init_trackers``, ``log``; :func:`end_tracking` finishes
them), all offline.

What is logged, on the main process only:

* every step: ``train/loss`` (the step's mean loss), ``train/learning_rate`` and ``train/tokens_per_second``
  (running average). Every step rather than every N: a step costs far more than one scalar write, and the per-step
  loss is what ``metrics.json`` and the checkpoints keep too, so the curves agree with them point for point;
* every ``--eval-every``: ``eval/score`` (mean over tasks) and ``eval/<task>``; at the end ``test/score`` and
  ``test/<task>`` (of the weights saved in the run directory);
* once, as hyperparameters: every option of :class:`~adalink.training.args.TrainArgs`, flat (None written as ``"None"``:
  TensorBoard's hparams and MLflow's params take no None).

Logs go under ``--logging-dir`` (default ``<output_dir>/logs``; TensorBoard's in ``<logs>/<run name>``, the run
name being the output directory's name). Nothing reaches the network: MLflow writes a local
file store ``<logs>/mlruns`` (``MLFLOW_ALLOW_FILE_STORE=true``, which MLflow 3 asks for), Weights & Biases runs in
offline mode (``WANDB_MODE=offline``, files under ``<logs>/wandb``), trackio keeps its SQLite files in
``<logs>/trackio`` (``TRACKIO_DIR``).

A run resumed with ``--resume`` continues its tracker runs rather than starting new ones: TensorBoard purges the
events from the checkpoint's step on (``purge_step``: what the killed attempt logged after its last checkpoint is
hidden, and logged again), MLflow and Weights & Biases reopen the run whose id ``<logs>/tracker-runs.json`` keeps.
The steps between the checkpoint and the kill appear twice in MLflow's metric history, with equal values (a resumed
run is bit-exact). ``--resume`` itself is not a hyperparameter and is not logged.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingPackageError, UsageError
from ..io import write_json_atomic

if TYPE_CHECKING:
    from accelerate import Accelerator

__all__ = [
    "TRACKERS",
    "TRACKER_RUNS_FILE",
    "end_tracking",
    "log_scores",
    "log_step",
    "logging_dir",
    "start_tracking",
    "tracker_names",
    "trackers",
]

TRACKERS = ("tensorboard", "mlflow", "trackio", "wandb")
TRACKER_RUNS_FILE = "tracker-runs.json"  # in the logging dir: tracker -> the id of the run a resumption continues
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
        raise UsageError(
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
        raise MissingPackageError(f"--report-to {report_to}: {', '.join(missing)} not installed; pip install {extras}")
    if not names and "all" in report_to.lower():
        raise MissingPackageError(
            f"--report-to {report_to}: no tracker is installed; pip install 'adalink[tensorboard]' "
            f"(or {', '.join(TRACKERS[1:])})"
        )
    return names


def logging_dir(output_dir: Path, chosen: str | None) -> Path:
    """Where the trackers write: ``chosen`` (``--logging-dir``), else ``<output_dir>/logs``."""
    return Path(chosen) if chosen else output_dir / "logs"


def start_tracking(
    accelerator: Accelerator,
    names: list[str],
    logs: Path,
    run_name: str,
    config: dict[str, Any],
    *,
    resumed_at: int | None = None,
) -> None:
    """Point the trackers ``names`` at local storage under ``logs`` and start a run ``run_name`` with ``config`` (the
    run's options) as its hyperparameters; ``resumed_at``: the step a ``--resume`` restored (0: none found), whose
    tracker runs are continued. No-op without trackers."""
    if not names:
        return
    logs = logs.resolve()
    on_disk = _read_runs(logs)
    previous = on_disk if resumed_at is not None else {}
    init_kwargs: dict[str, dict[str, Any]] = {}
    if "tensorboard" in names and resumed_at is not None:
        init_kwargs["tensorboard"] = {"purge_step": resumed_at + 1}  # steps are logged from 1
    if "mlflow" in names:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 refuses a file store without it
        import mlflow

        mlflow.set_tracking_uri((logs / "mlruns").as_uri())
        if previous.get("mlflow"):
            init_kwargs["mlflow"] = {"run_id": previous["mlflow"]}
    if "wandb" in names:
        os.environ["WANDB_MODE"] = "offline"
        (logs / "wandb").mkdir(parents=True, exist_ok=True)
        init_kwargs["wandb"] = {"mode": "offline", "dir": str(logs / "wandb")}
        if previous.get("wandb"):
            init_kwargs["wandb"].update(id=previous["wandb"], resume="allow")
    if "trackio" in names:
        os.environ["TRACKIO_DIR"] = str(logs / "trackio")  # read when trackio is first imported
    hparams = {k: "None" if v is None else v for k, v in config.items() if k != "resume"}
    accelerator.init_trackers(run_name, init_kwargs=init_kwargs)
    for tracker in accelerator.trackers:
        if tracker.name == "mlflow" and previous.get("mlflow"):
            if accelerator.is_main_process:
                _log_new_params(hparams)  # MLflow refuses to change a logged parameter
        else:
            tracker.store_init_configuration(hparams)
    if accelerator.is_main_process:
        _write_runs(logs, accelerator, kept=previous, on_disk=on_disk)


def log_step(
    accelerator: Accelerator, step: int, *, loss: float, learning_rate: float, tokens_per_second: float
) -> None:
    accelerator.log(
        {"train/loss": loss, "train/learning_rate": learning_rate, "train/tokens_per_second": tokens_per_second},
        step=step,
    )


def log_scores(accelerator: Accelerator, split: str, step: int, per_task: dict[str, float]) -> None:
    """``<split>/score`` (the mean over tasks) and ``<split>/<task>`` of every task."""
    values = {f"{split}/score": sum(per_task.values()) / len(per_task)}
    values.update({f"{split}/{task}": score for task, score in per_task.items()})
    accelerator.log(values, step=step)


def end_tracking(accelerator: Accelerator) -> None:
    """Finish every tracker's run (flush and close its files). Not ``accelerator.end_training()``: that also tears
    down the process group, which the run's last ``wait_for_everyone`` and in-process callers still use."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers.clear()


def _read_runs(logs: Path) -> dict[str, str]:
    path = logs / TRACKER_RUNS_FILE
    if not path.is_file():
        return {}
    try:
        runs = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # a damaged file: start new tracker runs rather than fail the resumption
    return {k: v for k, v in runs.items() if isinstance(v, str)} if isinstance(runs, dict) else {}


def _write_runs(logs: Path, accelerator: Accelerator, *, kept: dict[str, str], on_disk: dict[str, str]) -> None:
    """Keep the ids of the MLflow and Weights & Biases runs just started, for a later ``--resume``, beside ``kept``:
    the ids a resumption read, so that a tracker left out of this attempt's ``--report-to`` is reopened by the next.
    ``on_disk``: what the file holds now (written only where the ids differ)."""
    ids = dict(kept)
    for tracker in accelerator.trackers:
        if tracker.name == "mlflow":
            ids["mlflow"] = tracker.tracker.info.run_id
        elif tracker.name == "wandb":
            ids["wandb"] = tracker.run.id
    if ids != on_disk:  # a fresh run replaces the ids of an earlier one in the same logging dir
        logs.mkdir(parents=True, exist_ok=True)
        write_json_atomic(logs / TRACKER_RUNS_FILE, ids)


def _log_new_params(hparams: dict[str, Any]) -> None:
    """Log to the active (reopened) MLflow run the parameters it does not hold yet; those it holds with another value
    (a resumption may change --save-every, --max-eval, ...) keep their first value."""
    import mlflow

    held = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    new = {k: v for k, v in hparams.items() if k not in held}
    if new:
        mlflow.log_params(new)


def _installed(tracker: str) -> bool:
    return any(importlib.util.find_spec(package) is not None for package in _PACKAGES[tracker])
