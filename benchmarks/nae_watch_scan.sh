#!/bin/bash
# What the upstream-template watcher (plugins/dssr_singularity/nae_watch.sh) costs on a node: the time of
# one of its scans of the node script's process tree (twice a second).  Run: bash benchmarks/nae_watch_scan.sh [N]
# (N children of the node script outside any container, default 50: the processes of a container are not
# walked).  Prints the processes scanned and the milliseconds per scan (mean of 20).
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../plugins/dssr_singularity/nae_watch.sh
source "$here/plugins/dssr_singularity/nae_watch.sh"
for _ in $(seq "${1:-50}"); do sleep 60 & done
start=$(date +%s%N)
for _ in $(seq 20); do
    dssr_containers $$
done
end=$(date +%s%N)
echo "processes scanned: $(($(wc -w </proc/$$/task/$$/children) + 1)); containers: ${#dssr_containers[@]}; ms per scan: $(((end - start) / 20000000))"
kill $(jobs -p) 2>/dev/null
