"""``--report-to``: the names it takes, a missing tracker refused before training with the pip line, what a run logs,
read back from TensorBoard's event files and MLflow's local file store, Weights & Biases offline, and a resumed run
continuing its tracker runs."""

import importlib.util
import json
import os
import shutil

import pytest
import yaml

from adalink import AdaLinkConfig
from adalink.cli import main
from adalink.training.args import TrainArgs
from adalink.training.tracking import TRACKERS, end_tracking, start_tracking, tracker_names
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

MAX_STEPS, EVAL_EVERY = 8, 4


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def test_names_all_and_none():
    assert tracker_names("none") == [] and tracker_names("MLflow, tensorboard") == ["tensorboard", "mlflow"]
    assert tracker_names("all") == [t for t in TRACKERS if _installed(t)]
    for bad in ("tensorbored", "none,wandb", ""):
        with pytest.raises(ValueError, match=r"--report-to .* is invalid: expected none, all, or a comma-separated"):
            TrainArgs(report_to=bad).validate()


@pytest.mark.parametrize("tracker", ["wandb", "trackio"])
def test_a_missing_tracker_is_refused_before_training_with_the_pip_line(tracker, tmp_path, capsys):
    if _installed(tracker):
        pytest.skip(f"{tracker} is installed here")
    out = tmp_path / "run"
    assert main(["train", "--report-to", f"tensorboard,{tracker}", "--output-dir", str(out)]) == 2
    assert f"pip install 'adalink[{tracker}]'" in capsys.readouterr().err
    assert not out.exists()  # nothing was loaded or written


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("tracking")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    data = write_sentiment_csv(root / "s.csv", 60)
    out = root / "run"
    args = [
        *("train", "--model", model, "--train-file", data, "--output-dir", str(out), "--rank", "2"),
        *("--batch-size", "8", "--max-steps", str(MAX_STEPS), "--eval-every", str(EVAL_EVERY), "--max-eval", "8"),
        *("--report-to", "tensorboard,mlflow"),
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    state = json.loads((out / "checkpoints" / f"step-{MAX_STEPS:08d}" / "state.json").read_text())
    return {"out": out, "metrics": metrics, "losses": state["history"]}


def test_tensorboard_holds_the_loss_of_every_step_and_the_scores(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = tracked_run["out"] / "logs" / "run"  # <logging dir>/<run name>
    events = EventAccumulator(str(logs))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    losses = tracked_run["losses"]
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, MAX_STEPS + 1))
    assert [value for _, value in scalars["train/loss"]] == pytest.approx(losses, abs=1e-6)  # stored as float32
    assert {"train/learning_rate", "train/tokens_per_second", "eval/s", "test/score"} <= scalars.keys()
    history = tracked_run["metrics"]["eval_history"]
    assert scalars["eval/score"] == [(h["step"], pytest.approx(h["score"])) for h in history]
    assert [s for s, _ in scalars["eval/score"]] == [EVAL_EVERY, 2 * EVAL_EVERY]
    assert scalars["test/score"] == [(MAX_STEPS, pytest.approx(tracked_run["metrics"]["score"]))]
    (hparams,) = logs.glob("*/hparams.yml")  # the configuration accelerate stores beside the events
    logged = yaml.safe_load(hparams.read_text())
    assert logged["max_steps"] == MAX_STEPS and logged["report_to"] == "tensorboard,mlflow"
    assert logged["lr"] == pytest.approx(AdaLinkConfig(rank=2).learning_rate())  # the resolved rate, not "None"


def test_mlflow_writes_a_local_file_store_with_params_and_metrics(tracked_run):
    import mlflow
    from mlflow.tracking import MlflowClient

    store = tracked_run["out"] / "logs" / "mlruns"
    assert store.is_dir() and os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    client = MlflowClient(tracking_uri=store.as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("run").experiment_id])
    assert run.info.status == "FINISHED" and mlflow.get_tracking_uri().startswith("file:")
    assert run.data.params["max_steps"] == str(MAX_STEPS) and run.data.params["head_lr"] == "None"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == list(range(1, MAX_STEPS + 1))
    assert [m.value for m in history] == pytest.approx(tracked_run["losses"], abs=1e-9)
    scores = client.get_metric_history(run.info.run_id, "eval/score")
    assert [(m.step, m.value) for m in scores] == [
        (h["step"], h["score"]) for h in tracked_run["metrics"]["eval_history"]
    ]


def test_a_resumed_run_continues_its_tracker_runs(tracked_run, tmp_path):
    """A run killed between two checkpoints and resumed: TensorBoard shows every step once, MLflow one run."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, resumed_from = tmp_path / "run", MAX_STEPS - EVAL_EVERY
    first = json.loads((tracked_run["out"] / "run.json").read_text())["args"]
    args = [*("train", "--output-dir", str(out), "--report-to", "tensorboard,mlflow", "--rank", "2")]
    args += [*("--model", first["model"], "--train-file", first["train_file"], "--save-every", str(resumed_from))]
    args += [*("--batch-size", "8", "--max-steps", str(MAX_STEPS), "--eval-every", str(EVAL_EVERY), "--max-eval", "8")]
    assert main(args) == 0
    checkpoints = out / "checkpoints"
    losses = json.loads((checkpoints / f"step-{MAX_STEPS:08d}" / "state.json").read_text())["history"]
    shutil.rmtree(checkpoints / f"step-{MAX_STEPS:08d}")  # killed after logging the last steps, before checkpointing
    (checkpoints / "latest").write_text(f"step-{resumed_from:08d}\n")
    assert main([*args, "--resume", "--save-every", "1000"]) == 0  # a changed option: MLflow keeps the first value

    events = EventAccumulator(str(out / "logs" / "run"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(1, MAX_STEPS + 1))  # the first attempt's steps after the checkpoint are purged
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(losses, abs=1e-6)
    assert [e.step for e in events.Scalars("test/score")] == [MAX_STEPS]

    client = MlflowClient(tracking_uri=(out / "logs" / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("run").experiment_id])  # one run, reopened
    assert run.info.status == "FINISHED" and "resume" not in run.data.params
    assert run.data.params["save_every"] == str(resumed_from)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [*range(1, MAX_STEPS + 1), *range(resumed_from + 1, MAX_STEPS + 1)]
    assert {m.step: m.value for m in history} == {s: pytest.approx(v, abs=1e-9) for s, v in enumerate(losses, 1)}


def test_weights_and_biases_runs_offline_and_a_resumption_reopens_its_run(tracked_run, tmp_path, monkeypatch):
    """Weights & Biases writes an offline run under the logging dir (nothing reaches the network); after a kill and
    --resume, the resumed attempt logs into the same run id (``wandb sync`` then uploads one run).

    Offline whatever the environment says: ``WANDB_MODE=online`` is overridden by adalink, the server address is a
    refused local port (a request would fail, never reach wandb.ai), and wandb's own config, cache and data
    directories are the test's. wandb comes with the ``test`` extra, so CI runs this test (a skip fails there)."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "online")  # adalink sets offline mode itself
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    out = tmp_path / "run"
    first = json.loads((tracked_run["out"] / "run.json").read_text())["args"]
    args = [*("train", "--output-dir", str(out), "--report-to", "wandb", "--rank", "2", "--save-every", "2")]
    args += [*("--model", first["model"], "--train-file", first["train_file"], "--batch-size", "8")]
    args += ["--max-steps", "4", "--max-eval", "8"]
    assert main(args) == 0
    run_id = json.loads((out / "logs" / "tracker-runs.json").read_text())["wandb"]
    (offline,) = (out / "logs" / "wandb").rglob(f"offline-run-*-{run_id}")
    assert (offline / f"run-{run_id}.wandb").stat().st_size > 0
    shutil.rmtree(out / "checkpoints" / "step-00000004")
    (out / "checkpoints" / "latest").write_text("step-00000002\n")
    assert main([*args, "--resume"]) == 0
    attempts = sorted((out / "logs" / "wandb").rglob("offline-run-*"))
    assert len(attempts) == 2 and all(a.name.endswith(f"-{run_id}") for a in attempts)


def test_a_resumption_keeps_the_run_id_of_a_tracker_it_leaves_out(tmp_path):
    """A run logged to MLflow and W&B, resumed with MLflow only: the W&B run id stays for the next resumption. A fresh
    run in the same logging dir replaces the ids (it must not reopen an earlier run's)."""
    pytest.importorskip("mlflow")
    from accelerate import Accelerator

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "tracker-runs.json").write_text(json.dumps({"wandb": "abc123"}))
    accelerator = Accelerator(log_with=["mlflow"])
    start_tracking(accelerator, ["mlflow"], logs, "run", {"lr": 1e-3}, resumed_at=0)
    end_tracking(accelerator)
    resumed = json.loads((logs / "tracker-runs.json").read_text())
    assert resumed["wandb"] == "abc123" and resumed.keys() == {"wandb", "mlflow"}
    start_tracking(accelerator, ["mlflow"], logs, "run", {"lr": 1e-3})
    end_tracking(accelerator)
    fresh = json.loads((logs / "tracker-runs.json").read_text())
    assert fresh.keys() == {"mlflow"} and fresh["mlflow"] != resumed["mlflow"]
