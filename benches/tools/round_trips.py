#!/usr/bin/env python3
"""Where one round trip's time goes between two processes, from syscall
tracepoints: the client's send, the node's receive, the node's reply and
the client's receive of it, per round (p10 / p50 / p90 of each stage).

Record (tracepoints work on this VM, hardware events do not):
  perf record -q -e 'sched:sched_switch,sched:sched_wakeup,raw_syscalls:sys_enter,raw_syscalls:sys_exit' \\
      -o sched.data -- target/release/job-node bench --jobs 2000 --rounds 3000
  perf script -i sched.data -F comm,pid,tid,time,event,trace > sched.txt

usage:
  round_trips.py sched.txt CLIENT_PID NODE_PID [LAST_N]

CLIENT_PID is the bench process, NODE_PID the node its client talks to
(node-1: the first `job-node start` the bench spawns; `grep 'NR 59'`
lists the execs). A round is: client sendto (exit) -> node recvfrom
(exit, data) -> node sendto (enter) -> client recvfrom (exit, data). The
last LAST_N rounds (default 3000) are summarised: with `--rounds` larger
than the throughput phase they are the one-in-flight phase. The tracing
itself slows every syscall: compare stages, not absolute figures.
"""
import re
import sys

SENDTO, RECVFROM = "NR 44 ", "NR 45 "
LINE = re.compile(r"\s*(\S+) (\d+)/(\d+)\s+([\d.]+):\s+(\S+): (.*)")


def rounds(path, client, node):
    state = None
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        _comm, pid, _tid, t, event, rest = m.groups()
        t = float(t) * 1e6
        exit_ = event.startswith("raw_syscalls:sys_exit")
        enter = event.startswith("raw_syscalls:sys_enter")
        data = not rest.endswith("= -11")  # EAGAIN: nothing read
        if pid == client and exit_ and rest.startswith(SENDTO):
            state = {"client_send": t}
        elif state is None:
            continue
        elif "node_recv" not in state:
            if pid == node and exit_ and rest.startswith(RECVFROM) and data:
                state["node_recv"] = t
        elif "node_send" not in state:
            if pid == node and enter and rest.startswith(SENDTO):
                state["node_send"] = t
        elif pid == client and exit_ and rest.startswith(RECVFROM) and data:
            state["client_recv"] = t
            yield state
            state = None


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    last = int(sys.argv[4]) if len(sys.argv) > 4 else 3000
    found = list(rounds(sys.argv[1], sys.argv[2], sys.argv[3]))
    print(f"{len(found)} rounds, the last {min(last, len(found))} summarised (µs)")
    found = found[-last:]
    if not found:
        return
    stages = [
        ("client send -> node receive", "client_send", "node_recv"),
        ("node receive -> node reply", "node_recv", "node_send"),
        ("node reply -> client receive", "node_send", "client_recv"),
        ("whole round trip", "client_send", "client_recv"),
    ]
    for name, a, b in stages:
        d = sorted(r[b] - r[a] for r in found)
        n = len(d)
        print(f"{name:32} p10 {d[n // 10]:7.1f}  p50 {d[n // 2]:7.1f}  p90 {d[n * 9 // 10]:7.1f}")


if __name__ == "__main__":
    main()
