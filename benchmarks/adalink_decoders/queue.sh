#!/usr/bin/env bash
# Run a queue of issue 26's runs one at a time (the diagnosis: queue.txt; the study: study.txt with
# RESULTS_DIR=benchmarks/results/adalink-decoders/study). Each line of QUEUE is "NAME <adalink train options>", or
# "NAME zeroshot RUN MAX_EVAL" (the base model scored through the finished run RUN, adapter off); a run whose result
# file exists is skipped, so the queue can be edited (appended to) while it runs and restarted.
# Start it at the lowest priority on one thread, e.g.:
#   OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup setsid nice -n 19 benchmarks/adalink_decoders/queue.sh QUEUE &
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
queue="${1:-$here/benchmarks/adalink_decoders/queue.txt}"
python="${PYTHON:-/work/main/.venv/bin/python}"
results="${RESULTS_DIR:-$here/benchmarks/results/adalink-decoders/diagnosis}"
export RESULTS_DIR="$results"
logs="${LOGS:-/tmp/adalink-diagnosis}"
mkdir -p "$logs" "$results"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH="$here/src:$here" TOKENIZERS_PARALLELISM=false
while true; do
    next=""
    while read -r name rest; do
        [[ -z "$name" || "$name" == \#* ]] && continue
        [[ -e "$results/$name.json" || -e "$logs/$name.failed" ]] && continue
        next="$name"; options="$rest"; break
    done < "$queue"
    [[ -z "$next" ]] && break
    echo "$(date -Is) start $next: $options"
    if [[ "$options" == zeroshot* ]]; then
        read -r _ of max_eval <<< "$options"
        command=("$python" "$here/benchmarks/adalink_decoders/zeroshot.py" "$next" "$logs/runs/$of" "$max_eval")
    else
        # shellcheck disable=SC2206
        command=("$python" "$here/benchmarks/adalink_decoders/diagnose.py" "$next" -- $options
                 --output-dir "$logs/runs/$next")
    fi
    if ! "${command[@]}" > "$logs/$next.log" 2>&1; then
        touch "$logs/$next.failed"
        echo "$(date -Is) FAILED $next (see $logs/$next.log)"
    else
        echo "$(date -Is) done $next"
    fi
done
echo "$(date -Is) queue empty"
