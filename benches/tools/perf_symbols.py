#!/usr/bin/env python3
"""Flat profile per process of `perf record` data, resolving the job-node
binary's addresses with nm (the perf 6.1 of this machine does not read its
symbols). usage: benches/tools/perf_symbols.py PERF_DATA BINARY [TOP]
(docs/performance.md, "Profile of the end-to-end path")"""
import bisect, collections, re, subprocess, sys
data, binary = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 40
sys.path.insert(0, __import__('os').path.dirname(__file__))
from perf_tree import symbols  # noqa: E402 (the same symbol table)
syms, addrs, delta = symbols(binary)
maps = {}
mm = re.compile(r' (\d+)/\d+: \[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0x([0-9a-f]+) .*\]: r-xp (\S+)')
out = subprocess.run(['perf', 'script', '-G', '--show-mmap-events', '-i', data, '-F', 'pid,ip,sym,dso'],
                     capture_output=True, text=True).stdout
per_pid = collections.defaultdict(collections.Counter)
totals = collections.Counter()
for line in out.splitlines():
    if 'PERF_RECORD_MMAP' in line:
        m = mm.search(line)
        if m and m.group(4).endswith('job-node'):
            maps[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
        continue
    f = line.split()
    if len(f) < 3 or not re.fullmatch(r'[0-9a-f]+', f[1]):
        continue
    pid, ip = f[0], int(f[1], 16)
    dso = f[-1].strip('()')
    sym = ' '.join(f[2:-1])
    if dso.endswith('job-node') and pid in maps:
        start, pgoff = maps[pid]
        a = ip - start + pgoff + delta
        i = bisect.bisect_right(addrs, a) - 1
        sym = syms[i][1][:120] if i >= 0 else '?'
    elif not sym or sym == '[unknown]':
        sym = dso
    per_pid[pid][sym] += 1
    totals[pid] += 1
for pid, n in totals.most_common():
    print(f'== pid {pid}: {n} samples')
    for sym, c in per_pid[pid].most_common(top):
        print(f'{100*c/n:6.2f}%  {sym}')
