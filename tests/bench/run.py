#!/usr/bin/env python3
"""Run every tests/bench/bench_*.py and write docs/benchmarks.md (``make bench``).

Each bench script is run with this interpreter from the checkout root and prints one markdown
section on stdout; this runner adds a header (date, machine, load) and the command that produced
each section. A failing script gets its error in the document instead of silently missing.
Everything from the NOTES marker to the end of the existing document is hand-written (history, results
no script produces) and is kept as it is.

Usage: tests/bench/run.py [--only NAME] [--out docs/benchmarks.md] [-- extra args for the scripts]
"""
import argparse
import datetime
import glob
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTES = "<!-- hand-written notes: tests/bench/run.py keeps everything below this line -->"


def kept_notes(path):
    # type: (str) -> str
    """The hand-written tail of the existing document, marker included ("" when there is none)."""
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        return ""
    at = text.find(NOTES)
    return text[at:] if at >= 0 else ""


def machine():
    # type: () -> str
    cpus = os.cpu_count() or 0
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "n/a"
    return "%s, Python %s, %d CPUs, load average at start %s" % (
        platform.platform(), platform.python_version(), cpus, load)


def main():
    # type: () -> int
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="run only tests/bench/bench_NAME.py")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("extra", nargs="*", help="arguments passed to every bench script")
    args = ap.parse_args()
    scripts = sorted(glob.glob(os.path.join(ROOT, "tests", "bench", "bench_*.py")))
    if args.only:
        scripts = [s for s in scripts if os.path.basename(s) == "bench_%s.py" % args.only]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "build", "collections"),
                                                      env.get("PYTHONPATH")]))
    parts = [
        "# Benchmarks\n",
        "Written by `make bench` (`%s tests/bench/run.py`) on %s UTC.\n" % (
            os.path.relpath(sys.executable, ROOT), datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")),
        "Machine: %s.\n" % machine(),
    ]
    status = 0
    for script in scripts:
        rel = os.path.relpath(script, ROOT)
        cmd = [sys.executable, rel] + list(args.extra)
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
        took = time.time() - t0
        parts.append("<!-- %s -->" % rel)
        if proc.returncode == 0:
            parts.append(proc.stdout.decode("utf-8", "replace").rstrip() + "\n")
        else:
            status = 1
            parts.append("## %s FAILED\n\n```\n%s\n```\n" % (rel, proc.stderr.decode("utf-8", "replace")[-3000:]))
        parts.append("_Produced by `%s` in %.0f s._\n" % (" ".join(os.path.relpath(c, ROOT) if c == sys.executable
                                                                    else c for c in cmd), took))
        sys.stderr.write("%s: %s in %.0f s\n" % (rel, "ok" if proc.returncode == 0 else "FAILED", took))
    notes = kept_notes(args.out)
    if notes:
        parts.append(notes.rstrip("\n") + "\n")
    with open(args.out + ".tmp", "w") as fh:
        fh.write("\n".join(parts))
    os.replace(args.out + ".tmp", args.out)
    return status


if __name__ == "__main__":
    sys.exit(main())
