#!/usr/bin/env python3
"""Call-graph views of `perf record --call-graph dwarf` data, resolving the
binary's addresses with nm as perf_symbols.py does (the perf 6.1 of this
machine does not read the Rust binary's symbols). docs/performance.md.

usage:
  perf_tree.py DATA BINARY inclusive [PID] [TOP]
      share of each process's samples with a function anywhere on the stack
  perf_tree.py DATA BINARY callers PID PATTERN CALLER_REGEX
      for samples whose stack holds PATTERN: the nearest 3 callers matching
  perf_tree.py DATA BINARY children PID PATTERN CALLEE_REGEX
      for samples whose stack holds PATTERN: the nearest callee matching

Record with e.g.: perf record -e cpu-clock -F 700 --call-graph dwarf,16384 \\
    -- target/release/job-node bench --jobs 100000 --rounds 200
"""
import bisect, collections, os, re, subprocess, sys

def symbols(binary):
    """The binary's function symbols sorted by address, their addresses,
    and the offset of its executable segment (file offset to address)."""
    delta = 0
    for line in subprocess.run(['readelf', '-lW', binary], capture_output=True, text=True).stdout.splitlines():
        f = line.split()
        if f and f[0] == 'LOAD' and 'E' in f[6:-1]:
            delta = int(f[2], 16) - int(f[1], 16)
    syms = []
    for line in subprocess.run(['nm', '-C', '--defined-only', binary], capture_output=True, text=True).stdout.splitlines():
        parts = line.split(' ', 2)
        if len(parts) == 3 and parts[1] in 'tTwW':
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return syms, [a for a, _ in syms], delta


def samples(data, binary):
    """Yields (pid, frames leaf first) with the binary's frames named."""
    syms, addrs, delta = symbols(binary)
    name = os.path.basename(binary)
    maps = {}
    mm = re.compile(r' (\d+)/\d+: \[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0x([0-9a-f]+) .*\]: r-xp (\S+)')
    out = subprocess.Popen(['perf', 'script', '--show-mmap-events', '-i', data, '-F', 'pid,ip,sym,dso'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    pid, frames = None, []
    for line in out:
        if 'PERF_RECORD_MMAP' in line:
            m = mm.search(line)
            if m and os.path.basename(m.group(4)) == name:
                maps[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
            continue
        if not line.strip() or not line.startswith('\t'):
            if pid is not None and frames:
                yield pid, frames
            pid, frames = (line.split()[0] if line.strip() else None), []
            continue
        f = line.split()
        if not f or not re.fullmatch(r'[0-9a-f]+', f[0]):
            continue
        ip, dso, sym = int(f[0], 16), f[-1].strip('()'), ' '.join(f[1:-1])
        if os.path.basename(dso) == name and pid in maps:
            start, pgoff = maps[pid]
            i = bisect.bisect_right(addrs, ip - start + pgoff + delta) - 1
            sym = syms[i][1] if i >= 0 else '?'
        elif not sym or sym == '[unknown]':
            sym = dso
        frames.append(sym)
    if pid is not None and frames:
        yield pid, frames

def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    data, binary, mode, rest = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if mode == 'inclusive':
        only = rest[0] if rest else None
        top = int(rest[1]) if len(rest) > 1 else 60
        incl, totals = collections.defaultdict(collections.Counter), collections.Counter()
        for pid, frames in samples(data, binary):
            totals[pid] += 1
            for sym in set(frames):
                incl[pid][sym] += 1
        for pid, n in totals.most_common():
            if only and pid != only:
                continue
            print(f'== pid {pid}: {n} samples (inclusive)')
            for sym, c in incl[pid].most_common(top):
                print(f'{100 * c / n:6.2f}%  {sym[:160]}')
    elif mode in ('callers', 'children') and len(rest) == 3:
        only, pattern, regex = rest[0], rest[1], re.compile(rest[2])
        counts, total, hits = collections.Counter(), 0, 0
        for pid, frames in samples(data, binary):
            if pid != only:
                continue
            total += 1
            at = [i for i, s in enumerate(frames) if pattern in s]
            if not at:
                continue
            hits += 1
            if mode == 'callers':
                chain = [s for s in frames[at[0] + 1:] if regex.search(s)][:3]
                counts[' <- '.join(c[:90] for c in chain)] += 1
            else:
                below = [s for s in reversed(frames[:at[-1]]) if regex.search(s) and pattern not in s]
                counts[(below[0] if below else frames[0])[:140]] += 1
        print(f'{hits} of {total} samples of pid {only} hold {pattern}')
        for key, c in counts.most_common(30):
            print(f'{100 * c / max(total, 1):6.2f}%  {key}')
    else:
        sys.exit(__doc__)

if __name__ == '__main__':
    main()
