#!/usr/bin/env bash
# The experiments of docs/paper-reproduction.md, one after the other, in priority order, on a shared CPU:
# one process, one torch thread, nice 10. Finished runs are skipped, so this can be restarted at any time.
# Usage: bash experiments/run_all.sh [seeds] [experiment ...]
#   default: seeds 0,1,2 and table3 table1 table5 rank-tweets rank-easyvqa lr-easyvqa table5-smollm2
# The committed results ran as two such queues side by side: "table5 rank-tweets" and
# "table3 table1 rank-easyvqa table5-smollm2"; a third process took table5-smollm2 from the other end
# (`adalink experiment table5-smollm2 --reverse`).
set -u
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
seeds="${1:-0,1,2}"
shift || true
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(table3 table1 table5 rank-tweets rank-easyvqa lr-easyvqa table5-smollm2)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
for name in "${names[@]}"; do
    echo "=== $(date -u +%H:%M:%S) $name"
    nice -n 10 python -m adalink experiment "$name" --seeds "$seeds" --threads 1
done
echo "=== $(date -u +%H:%M:%S) done"
