#!/usr/bin/env python3
"""Benchmark: merge_events + to_rules (+ pending_answers) on the events of 1,000 hosts.

Prints one markdown section on stdout (tests/bench/run.py collects it into docs/benchmarks.md).

Input: a realistic log from tests/bench/tools/make_auditlog.py (``--lines``, ``--distinct`` accesses over
``--profiles`` profiles) read once with our LogReader; its distinct events are then spread over
``--hosts`` hosts with a deterministic popularity skew (a few accesses everywhere, most on a few hosts,
as in a real fleet), each host getting its own copies with its own ``host`` and counts - the shape the
``denials`` module returns per host and ``hostvars`` holds. Timed, in this process: merge_events over
the per-host lists; to_rules with 40 answers (globs per profile, denies, ignores) and ``min_hosts=2``;
to_rules with ``default=allow``; pending_answers (YAML, without abstraction lookups). Wall and CPU time
(best of ``--repeat``) and peak RSS are reported.

Usage: bench_rules.py [--hosts 1000] [--lines 100000] [--distinct 4000] [--profiles 40] [--repeat 3]
"""
import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tests", "bench", "tools")  # vendored, see tests/corpus/README.md
GEN = os.path.join(TOOLS, "make_auditlog.py")
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.armada.apparmor.plugins.filter.pending_answers import pending_answers_filter  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.fleet import merge_events  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader  # noqa: E402


def base_events(lines, distinct, profiles, seed):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "audit.log")
        subprocess.run([sys.executable, GEN, "--lines", str(lines), "--distinct", str(distinct), "--profiles",
                        str(profiles), "--seed", str(seed), "--out", log], check=True, capture_output=True)
        reader = LogReader(host=None)
        with open(log, "rb") as fh:
            reader.feed_stream(fh)
        return reader.result()["events"]


def fleet(events, hosts, seed, skew):
    """Per-host event lists: event i is on a host with probability 1/(1 + rank/100)^skew (popularity skew)."""
    rng = random.Random(seed)
    per_host = []
    probs = [min(1.0, 1.0 / (1.0 + i / 100.0) ** skew) for i in range(len(events))]
    order = list(range(len(events)))
    rng.shuffle(order)
    for h in range(hosts):
        name = "host%04d" % h
        mine = []
        for rank, idx in enumerate(order):
            if rng.random() < probs[rank]:
                ev = dict(events[idx])
                ev["host"] = name
                ev["count"] = rng.randint(1, 50)
                mine.append(ev)
        per_host.append(mine)
    return per_host


def answers_for(events):
    """40 answers of the kinds inventories hold: per-profile path globs with and without ``glob``, includes,
    capabilities, execs, and fleet-wide denies and ignores."""
    profiles = sorted(set(e["profile"] for e in events if e.get("profile")))
    answers = [
        {"profile": "*", "match": {"path": "/home/*/.ssh/**"}, "answer": "deny"},
        {"profile": "*", "match": {"kind": "file", "path": "/etc/shadow"}, "answer": "deny"},
        {"profile": "*", "match": {"path": "/proc/**"}, "answer": "ignore"},
        {"profile": "*", "match": {"path": "/sys/**"}, "answer": "ignore"},
    ]
    for p in profiles:
        answers.append({"profile": p, "match": {"kind": "file", "path": "/var/lib/app/**"}, "answer": "allow",
                        "glob": "/var/lib/app/**"})
        answers.append({"profile": p, "match": {"kind": "file", "path": "/var/log/**", "mask": "rw"},
                        "answer": "allow"})
        answers.append({"profile": p, "match": {"kind": "file", "path": "/srv/www/**"}, "answer": "allow",
                        "glob": "/srv/www/**"})
        answers.append({"profile": p, "match": {"kind": "capability"}, "answer": "allow"})
        answers.append({"profile": p, "match": {"kind": "exec"}, "answer": "allow", "exec_mode": "ix"})
        answers.append({"profile": p, "match": {"kind": "file", "path": "/etc/ssl/**", "mask": "r"},
                        "answer": "allow", "include": "abstractions/ssl_certs"})
        if len(answers) >= 40:
            break
    return answers[:40]


def timed(fn, repeat):
    best = None
    out = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or cpu < best[1]:
            best = (wall, cpu)
    return out, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=100000)
    ap.add_argument("--distinct", type=int, default=4000)
    ap.add_argument("--profiles", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args, _extra = ap.parse_known_args()

    events = base_events(args.lines, args.distinct, args.profiles, args.seed)
    answers = answers_for(events)
    print("## Answers engine: merge_events + to_rules on %d hosts\n" % args.hosts)
    print("Input: %d distinct events read from a %d-line audit log (`make_auditlog.py --distinct %d --profiles %d "
          "--seed %d`), copied onto %d hosts with a popularity skew (event of rank i is on a host with probability "
          "1/(1+i/100)^skew): skew 2 is a long tail (many accesses on one or two hosts), skew 1 a heavy fleet where "
          "most accesses are on dozens of hosts. %d answers (per-profile globs, includes, capabilities, execs, "
          "fleet-wide denies and ignores).\n" % (len(events), args.lines, args.distinct, args.profiles, args.seed,
                                                 args.hosts, len(answers)))
    print("| skew | host events in | fleet events | step | wall s | CPU s | result |")
    print("|---|---:|---:|---|---:|---:|---|")
    timings = {}
    for skew in (2, 1):
        per_host = fleet(events, args.hosts, args.seed, skew)
        host_events = sum(len(h) for h in per_host)
        merged, t_merge = timed(lambda ph=per_host: merge_events(ph), args.repeat)
        res, t_rules = timed(lambda m=merged: to_rules(m, answers, min_hosts=2), args.repeat)
        res_allow, t_allow = timed(lambda m=merged: to_rules(m, [], default="allow"), args.repeat)
        yaml_text, t_pending = timed(lambda r=res: pending_answers_filter(r, abstractions_dir=''), args.repeat)
        s, sa = res["stats"], res_allow["stats"]
        rules = sum(len(e["rules"]) + len(e["deny"]) + sum(len(c["rules"]) + len(c["deny"])
                                                           for c in e["children"].values())
                    for e in res_allow["profiles"].values())
        head = "| %d | %d | %d " % (skew, host_events, len(merged))
        print(head + "| merge_events (%d lists) | %.2f | %.2f | %d events, %d seen by one host |"
              % (args.hosts, t_merge[0], t_merge[1], len(merged), sum(1 for m in merged if len(m["hosts"]) == 1)))
        print(head + "| to_rules, answers, min_hosts=2 | %.2f | %.2f | %d allowed, %d denied, %d ignored, "
              "%d pending |" % (t_rules[0], t_rules[1], s["allowed"], s["denied"], s["ignored"], s["pending"]))
        print(head + "| to_rules, default=allow | %.2f | %.2f | %d rules, %d pending (exec without mode), "
              "%d unsupported |" % (t_allow[0], t_allow[1], rules, sa["pending"], sa["unsupported"]))
        print(head + "| pending_answers (YAML) | %.2f | %.2f | %d lines, %d KiB |"
              % (t_pending[0], t_pending[1], yaml_text.count("\n"), len(yaml_text.encode()) // 1024))
        timings[skew] = {"merge": t_merge, "to_rules": t_rules, "allow": t_allow, "pending": t_pending}
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("\nBest of %d runs (lowest CPU time; the machine is shared). Peak RSS of the process: %.0f MiB. "
          "Command: `tests/bench/bench_rules.py --hosts %d --lines %d --distinct %d --profiles %d`.\n"
          % (args.repeat, rss_mb, args.hosts, args.lines, args.distinct, args.profiles))
    sys.stderr.write(json.dumps(timings) + "\n")


if __name__ == "__main__":
    main()
