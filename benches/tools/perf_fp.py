#!/usr/bin/env python3
"""Call-graph views of a `perf record --call-graph fp` recording of a
frame-pointer build, with the symbols (and inlined frames) perf resolves
itself. docs/performance.md ("Fifth round") says why: DWARF unwinding of
the node processes stopped at the first non-inlined frame, so inclusive
shares from `perf_tree.py` missed most of the coordinator.

Build and record:
  RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -p job-node \\
      --target-dir target-fp
  perf record -e cpu-clock -F 1500 --call-graph fp -o perf.data -- \\
      target-fp/release/job-node bench --jobs 300000 --rounds 200

usage:
  perf_fp.py DATA pids
      samples per process
  perf_fp.py DATA inclusive PID [REGEX] [TOP]
      share of PID's samples with a frame matching REGEX (default: this
      workspace's crates) anywhere on the stack
  perf_fp.py DATA children PID SUBSTRING [DEPTH] [TOP]
      for samples holding a frame containing SUBSTRING (its outermost
      occurrence): the DEPTH frames below it, as a share of all samples
  perf_fp.py DATA callers PID SUBSTRING [DEPTH] [TOP]
      the same, for the DEPTH frames above its innermost occurrence
"""
import collections
import re
import subprocess
import sys

FRAME = re.compile(r'\s*[0-9a-f]+ (.*) \((inlined|[^)]*)\)$')
OURS = r'(job_queue|cluster_|actor_core|job_node)'


def samples(data):
    """Yields (pid, frames leaf first), inlined frames included."""
    out = subprocess.Popen(['perf', 'script', '-i', data, '-F', 'pid,ip,sym,dso'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    pid, frames = None, []
    for line in out:
        if not line.startswith('\t'):
            if pid is not None and frames:
                yield pid, frames
            pid, frames = (line.split()[0] if line.strip() else None), []
            continue
        m = FRAME.match(line.rstrip())
        if m:
            frames.append(m.group(1))
    if pid is not None and frames:
        yield pid, frames


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    data, mode, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if mode == 'pids':
        counts = collections.Counter(pid for pid, _ in samples(data))
        for pid, n in counts.most_common():
            print(f'{pid}\t{n}')
        return
    if not rest:
        sys.exit(__doc__)
    pid = rest[0]
    counts, total = collections.Counter(), 0
    if mode == 'inclusive':
        pattern = re.compile(rest[1] if len(rest) > 1 and rest[1] else OURS)
        top = int(rest[2]) if len(rest) > 2 else 60
        for p, frames in samples(data):
            if p != pid:
                continue
            total += 1
            for f in set(frames):
                if pattern.search(f):
                    counts[f] += 1
    elif mode in ('children', 'callers') and len(rest) >= 2:
        needle = rest[1]
        depth = int(rest[2]) if len(rest) > 2 else 1
        top = int(rest[3]) if len(rest) > 3 else 40
        for p, frames in samples(data):
            if p != pid:
                continue
            total += 1
            hits = [i for i, f in enumerate(frames) if needle in f]
            if not hits:
                continue
            if mode == 'children':
                i = max(hits)
                chain = frames[max(0, i - depth):i][::-1]
                counts[' > '.join(f[:100] for f in chain) or '(self)'] += 1
            else:
                i = min(hits)
                chain = frames[i + 1:i + 1 + depth]
                counts[' < '.join(f[:100] for f in chain) or '(top)'] += 1
    else:
        sys.exit(__doc__)
    print(f'{total} samples of pid {pid}')
    for name, n in counts.most_common(top):
        print(f'{100 * n / max(total, 1):6.2f}%  {name[:200]}')


if __name__ == '__main__':
    main()
