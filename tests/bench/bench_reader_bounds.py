#!/usr/bin/env python3
"""Benchmark: the reader on hostile input stays linear in time and bounded in memory (issue 12, item 5).

Prints one markdown section (tests/bench/run.py collects it into docs/benchmarks.md). Each input is built
at 1x, 2x and 4x its size and read by a child process (``--child``) through the same path the ``denials``
module uses (``logsources.read_file`` into ``LogReader.feed``); the CPU time (user+sys) and peak RSS
(ru_maxrss) of the child come from wait4. Linear time shows as the CPU per MiB staying flat across
1x/2x/4x; bounded memory as the peak RSS staying flat.

Inputs: ``stamps`` - lines of 60 KiB of repeated ``audit(...): apparmor="DENIED"`` stamps without pid=
(before the fix, 24 s for one 256 KiB line: quadratic); ``long_lines`` - 1 MiB lines of the same stamps
(over the 64 KiB limit: skipped unscanned); ``gz_one_line`` - a rotated ``.gz`` holding one line
without a newline (before: 75 s and 534 MiB for 256 MiB); ``nested_json`` - 60 KiB lines of nested JSON
arrays (before: RecursionError). Every input ends with one good record, which must be read.

Usage: bench_reader_bounds.py [--scale 1] [--workdir build/bench]
       bench_reader_bounds.py --child PATH     (internal)
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = (b'type=AVC msg=audit(1700000000.123:42): apparmor="DENIED" operation="open" profile="/usr/bin/p" '
        b'name="/etc/x" pid=7 comm="c" requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n')
STAMP = b'audit(1700000000.123:42): apparmor="DENIED" '
MIB = 1 << 20


def child(path):
    sys.path.insert(0, os.path.join(ROOT, "build", "collections"))
    from ansible_collections.armada.apparmor.plugins.module_utils import logsources
    from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader
    reader = LogReader()
    _state, info = logsources.read_file(path, None, reader.feed, include_rotated=True)
    st = reader.result()["stats"]
    print(json.dumps({"records": st["records"], "skipped": st["skipped"], "lines": st["lines"],
                      "status": info["status"]}))


def build(kind, mib, path):
    """Write the input of ``mib`` MiB at ``path`` (plus ``path.1.gz`` for gz_one_line)."""
    for old in (path, path + ".1.gz"):
        if os.path.exists(old):
            os.unlink(old)
    if kind == "gz_one_line":
        with gzip.open(path + ".1.gz", "wb", compresslevel=1) as fh:
            chunk = STAMP * (MIB // len(STAMP))
            for _ in range(mib):
                fh.write(chunk)
        with open(path, "wb") as fh:
            fh.write(GOOD)
        return
    if kind == "stamps":
        line = STAMP * (60 * 1024 // len(STAMP)) + b"\n"
    elif kind == "long_lines":
        line = STAMP * (MIB // len(STAMP)) + b"\n"
    else:  # nested_json
        depth = 30 * 1024 - 20
        line = b'{"MESSAGE":"apparmor=","x":' + b"[" * depth + b"]" * depth + b"}\n"
    with open(path, "wb") as fh:
        for _ in range(mib * MIB // len(line)):
            fh.write(line)
        fh.write(GOOD)




def measure(path):
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path], capture_output=True,
                          check=False)
    after = os.times()
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode(errors="replace")[-2000:])
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return json.loads(proc.stdout), cpu, time.perf_counter() - t0


def peak_rss(path):
    """Peak RSS (KiB) of one child, from wait4."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _pid, _status, ru = os.wait4(proc.pid, 0)
    return ru.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--scale", type=int, default=1, help="multiply every input size")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "build", "bench", "bounds"))
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    os.makedirs(args.workdir, exist_ok=True)
    cases = [("stamps", 8), ("long_lines", 16), ("gz_one_line", 64), ("nested_json", 8)]
    rows = []
    for kind, base in cases:
        for mult in (1, 2, 4):
            mib = base * mult * args.scale
            path = os.path.join(args.workdir, "audit.log")
            build(kind, mib, path)
            res, cpu, wall = measure(path)
            rss = peak_rss(path)
            rows.append("| %s | %dx | %d MiB | %.2f s | %.3f s | %d MiB | %d | %s | %d |" % (
                kind, mult, mib, cpu, cpu / mib, rss // 1024, res["lines"], res["skipped"], res["records"]))
    shutil.rmtree(args.workdir, ignore_errors=True)
    print("## Reader on hostile input: linear time, bounded memory\n")
    print("Each input at 1x, 2x and 4x its size, read by a child process through `logsources.read_file` + "
          "`LogReader.feed` (what the `denials` module does). CPU = user+sys of the child (interpreter start "
          "included), peak RSS = the child's ru_maxrss. Every input ends with one good record (*records* = 1: it "
          "was read after the hostile lines). Command: `%s tests/bench/bench_reader_bounds.py`.\n"
          % os.path.relpath(sys.executable, ROOT))
    print("| input | size | MiB | CPU | CPU per MiB | peak RSS | lines | skipped | records |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nBefore the fix (same machine, one run each): one 64/128/256 KiB line of stamps took 1.08/5.14/24.0 s "
          "(quadratic); a `.gz` with one 256 MiB line took 74.9 s and 534 MiB RSS; a nested JSON line raised "
          "RecursionError out of the reader (no result at all).")


if __name__ == "__main__":
    main()
