#!/bin/bash
# Three nodes started by hand, the client's node (node-1) with T1 runtime
# threads and the other two with one each, measured with `job-node bench
# --cluster` (end to end; no CPU-per-job figure in that mode).
# usage: benches/tools/asym_threads.sh T1   (B=<job-node binary>, default target/release/job-node)
T1=$1; B=${B:-target/release/job-node}; D=$(mktemp -d)
P1=$((20000 + RANDOM % 20000)); P2=$((P1+1)); P3=$((P1+2))
$B start --name node-1 --listen 127.0.0.1:$P1 --workers 4 --threads $T1 > $D/1.log 2>&1 &
A=$!
$B start --name node-2 --listen 127.0.0.1:$P2 --workers 4 --threads 1 --join ws://127.0.0.1:$P1 > $D/2.log 2>&1 &
Bp=$!
$B start --name node-3 --listen 127.0.0.1:$P3 --workers 4 --threads 1 --join ws://127.0.0.1:$P1 > $D/3.log 2>&1 &
C=$!
# Until node-1 sees all three nodes up (`status` waits for it to answer).
for _ in $(seq 1 100); do
    up=$($B status --cluster ws://127.0.0.1:$P1 --connect-timeout 10 --json 2>/dev/null | grep -o '"status":"up"' | wc -l)
    [ "$up" -ge 3 ] && break
    sleep 0.1
done
$B bench --cluster ws://127.0.0.1:$P1 --jobs 100000 --rounds 2000 2>&1 | grep -E "^throughput:|one in flight:" | head -2
kill $A $Bp $C; wait 2>/dev/null; rm -rf $D
