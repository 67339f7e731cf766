#!/usr/bin/env bash
# Run the diagnosis queue one run at a time (issue 26 step 1). Each line of QUEUE is "NAME <adalink train options>";
# a run whose result file exists is skipped, so the queue can be edited (appended to) while it runs and restarted.
# Start it at the lowest priority on one thread, e.g.:
#   OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup setsid nice -n 19 benchmarks/adalink_decoders/queue.sh QUEUE &
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
queue="${1:-$here/benchmarks/adalink_decoders/queue.txt}"
python="${PYTHON:-/work/main/.venv/bin/python}"
results="$here/benchmarks/results/adalink-decoders/diagnosis"
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
    # shellcheck disable=SC2086
    if ! "$python" "$here/benchmarks/adalink_decoders/diagnose.py" "$next" -- $options \
            --output-dir "$logs/runs/$next" > "$logs/$next.log" 2>&1; then
        touch "$logs/$next.failed"
        echo "$(date -Is) FAILED $next (see $logs/$next.log)"
    else
        echo "$(date -Is) done $next"
    fi
done
echo "$(date -Is) queue empty"
