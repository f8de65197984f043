#!/bin/bash
# What the upstream-template watcher (plugins/dssr_singularity/nae_watch.sh) costs on a node: the time of
# one of its once-a-second scans of the node script's process tree.  Run: bash benchmarks/nae_watch_scan.sh [N]
# (N children, default 50).  Prints the processes scanned and the milliseconds per scan (mean of 20).
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../plugins/dssr_singularity/nae_watch.sh
source "$here/plugins/dssr_singularity/nae_watch.sh"
for _ in $(seq "${1:-50}"); do sleep 60 & done
start=$(date +%s%N)
for _ in $(seq 20); do
    dssr_below $$
    for p in "${dssr_below[@]}"; do
        [ -O "/proc/$p" ] && ! [ "/proc/$p/ns/mnt" -ef /proc/self/ns/mnt ] && [ -e "/proc/$p/root/etc/NAE/url.txt" ]
    done
done
end=$(date +%s%N)
echo "processes scanned: ${#dssr_below[@]}; ms per scan: $(((end - start) / 20000000))"
kill $(jobs -p) 2>/dev/null
