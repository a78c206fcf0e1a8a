#!/usr/bin/env python3
"""Interleaved runs of `job-node bench --json` for several builds, and a
Markdown table of the medians with every run (docs/performance.md).

usage: benches/tools/bench_compare.py [--runs N] LABEL=BINARY[+ARG...] ... -- BENCH_ARGS...
e.g.   benches/tools/bench_compare.py before=/tmp/jn-old after=target/release/job-node \\
           -- --jobs 100000 --rounds 3000
       benches/tools/bench_compare.py one=target/release/job-node \\
           three=target/release/job-node+--clients=3 -- --jobs 300000 --rounds 1000

A build's `+ARG`s are added to its runs only (after BENCH_ARGS), so one
binary can be compared with itself under two settings.

Runs are interleaved (A, B, A, B, ...) so that every build sees the same
machine load; the one-minute load average before each run is printed too.
"""
import json, statistics, subprocess, sys

def main():
    args = sys.argv[1:]
    runs = 3
    if args[:1] == ['--runs']:
        runs, args = int(args[1]), args[2:]
    if '--' not in args:
        sys.exit(__doc__)
    split = args.index('--')
    builds = [b.split('=', 1) for b in args[:split]]
    extra = {label: binary.split('+')[1:] for label, binary in builds}
    builds = [(label, binary.split('+')[0]) for label, binary in builds]
    bench = args[split + 1:]
    results = {label: [] for label, _ in builds}
    for i in range(runs):
        for label, binary in builds:
            out = subprocess.run([binary, 'bench', '--json', *bench, *extra[label]], capture_output=True, text=True)
            try:
                report = json.loads(out.stdout)
            except json.JSONDecodeError:
                sys.exit(f'{label} run {i + 1} printed no JSON (exit {out.returncode}):\n{out.stderr[-2000:]}')
            results[label].append(report)
            t, l, b = report['throughput'], report['latency'], report['baseline']
            print(f"{label} run {i + 1}: load {report.get('load_average') or 0:.1f}, "
                  f"{t['jobs_per_second']:,.0f} jobs/s, CPU {t.get('cpu_us_per_job') or 0:.1f} us/job "
                  f"(echo {b.get('ws_echo_cpu_us_per_message') or 0:.2f} us/envelope), "
                  f"p50 {l['p50_us']:.0f} p99 {l['p99_us']:.0f} us; echo {b['ws_echo_messages_per_second']:,.0f}/s, "
                  f"ping-pong p50 {b['ws_ping_pong']['p50_us']:.0f} us", file=sys.stderr, flush=True)
    def col(reports, get, fmt):
        values = [get(r) for r in reports]
        return f"{fmt(statistics.median(values))} ({', '.join(fmt(v) for v in values)})"
    n0 = lambda v: f'{v:,.0f}'
    n1 = lambda v: f'{v:.1f}'
    n2 = lambda v: f'{v:.2f}'
    print('| build | jobs/s | CPU µs/job | one in flight p50 µs | p99 µs | raw: WebSocket echo/s | raw: echo CPU µs/envelope | raw: ping-pong p50 µs | load average |')
    print('|---|---|---|---|---|---|---|---|---|')
    for label, _ in builds:
        rs = results[label]
        print(f"| {label} | {col(rs, lambda r: r['throughput']['jobs_per_second'], n0)} "
              f"| {col(rs, lambda r: r['throughput'].get('cpu_us_per_job') or 0, n1)} "
              f"| {col(rs, lambda r: r['latency']['p50_us'], n0)} "
              f"| {col(rs, lambda r: r['latency']['p99_us'], n0)} "
              f"| {col(rs, lambda r: r['baseline']['ws_echo_messages_per_second'], n0)} "
              f"| {col(rs, lambda r: r['baseline'].get('ws_echo_cpu_us_per_message') or 0, n2)} "
              f"| {col(rs, lambda r: r['baseline']['ws_ping_pong']['p50_us'], n0)} "
              f"| {col(rs, lambda r: r.get('load_average') or 0, n1)} |")

main()
