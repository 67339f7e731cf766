"""The zero-shot row of the AdaLink decoder study: a finished run's base model scored with the adapter off.

    python benchmarks/adalink_decoders/zeroshot.py NAME RUN_DIR MAX_EVAL

Runs what ``adalink eval --adapter RUN_DIR --base-only --max-eval MAX_EVAL`` runs (the run's own prompts, tokenizer and
generation settings, on the first MAX_EVAL test examples) and writes ``$RESULTS_DIR/NAME.json`` with the command, the
commit, the run it was scored through and the result, in the shape of the training runs' files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.adalink_decoders.diagnose import RESULTS, commit_stamp  # same folder and commit stamp


def main() -> None:
    name, run_dir, max_eval = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    from adalink.training.artifacts import evaluate_run

    began = time.perf_counter()
    evaluate_run(run_dir, max_eval=max_eval, base_only=True)
    result = json.loads((run_dir / "eval-test-base.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    record = {
        "name": name,
        "command": f"adalink eval --adapter {run_dir} --base-only --max-eval {max_eval}",
        "commit": commit_stamp(),
        "scored_through": run.get("args", {}),
        "wall_seconds": round(time.perf_counter() - began, 1),
        "metrics": {"score": result["score"], **result},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {RESULTS / f'{name}.json'}: score {result['score']:.4f}")


if __name__ == "__main__":
    main()
