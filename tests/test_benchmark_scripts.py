"""Every script under ``benchmarks/`` imports against the current package (a moved or renamed adalink name breaks a
script long before anyone runs it) and has a ``main`` to run; the helper modules they share are imported with them."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = [
    path
    for path in sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))
    if 'if __name__ == "__main__":' in path.read_text()
]


def test_the_scripts_are_found():
    assert {"overhead.py", "train_cost.py", "memory.py", "prefix_collapse.py"} <= {s.name for s in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_imports_and_has_a_main(script, monkeypatch):
    monkeypatch.syspath_prepend(str(script.parent))  # the scripts import their siblings (_common, ...)
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert callable(module.main)


def test_the_random_run_of_the_vllm_benchmarks_is_a_run_that_exports(tmp_path, monkeypatch):
    """vllm_throughput and vllm_many_tasks write their random AdaLink as `adalink train` writes a run (the call to
    save_outputs once had a stale signature, found only when the benchmark ran)."""
    from adalink.runs.reading import read_run
    from adalink.serve.vllm_engine import export_for_vllm
    from tiny_models import save_tiny_checkpoint

    monkeypatch.syspath_prepend(str(SCRIPTS[0].parent))
    import vllm_throughput

    base = save_tiny_checkpoint(tmp_path / "tiny-llama", "llama")
    vllm_throughput._random_adalink_run(tmp_path / "run", base, base, tasks=3)
    names = ["task0", "task1", "task2"]
    assert [t["name"] for t in read_run(tmp_path / "run")["tasks"]] == names
    assert [t.name for t in export_for_vllm([tmp_path / "run"], tmp_path / "export").tasks] == names


def test_the_vllm_ratios_are_per_round_with_their_spread(monkeypatch):
    """vllm_throughput reports a ratio as mean ± sd (and median) of per-round ratios: reference time / contender time
    of the same round, never a ratio of medians taken from different rounds."""
    monkeypatch.syspath_prepend(str(SCRIPTS[0].parent))
    import vllm_throughput

    result = {"base": {"seconds": [2.0, 4.0, 3.0]}, "adalink": {"seconds": [1.0, 4.0, 6.0]}}
    ratios = vllm_throughput._ratios(result, "adalink", "base")
    assert ratios["per_round"] == [2.0, 1.0, 0.5]
    assert ratios["mean"] == pytest.approx(7 / 6) and ratios["median"] == 1.0
    assert ratios["sd"] == pytest.approx(0.7637626, rel=1e-6)


def test_vllm_serving_compares_token_ids_and_logprobs(monkeypatch):
    """vLLM's final end-of-sequence token is dropped as adalink drops it; ids, finish reason and logprobs all count."""
    monkeypatch.syspath_prepend(str(SCRIPTS[0].parent))
    import vllm_serving

    reference = {"token_ids": [5, 6], "finish_reason": "stop", "logprobs": [-0.5, -0.25, -0.125]}
    answer = {"token_ids": [5, 6, 2], "finish_reason": "stop", "logprobs": [-0.5, -0.2503, -0.125]}
    assert vllm_serving._compare(answer, reference, eos={2}) == (True, pytest.approx(3e-4))
    assert not vllm_serving._compare({**answer, "token_ids": [5, 7, 2]}, reference, eos={2})[0]
    assert not vllm_serving._compare({**answer, "finish_reason": "length"}, reference, eos={2})[0]
    assert not vllm_serving._compare(answer, reference, eos={3})[0]  # 2 is no end token: a token too many
