#!/usr/bin/env python3
"""Benchmark: merge_events + to_rules (+ pending_answers) on the events of 1,000 hosts.

Prints one markdown section on stdout (tests/bench/run.py collects it into docs/benchmarks.md).

Input: a realistic log from ../shared/bench/make_auditlog.py (``--lines``, ``--distinct`` accesses over
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
SHARED = os.environ.get("ARMADA_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
GEN = os.path.join(SHARED, "bench", "make_auditlog.py")
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.armada.apparmor.plugins.module_utils.answers import merge_events, to_rules  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.logparse import LogReader  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.suggest import pending_yaml  # noqa: E402


def base_events(lines, distinct, profiles, seed):
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "audit.log")
        subprocess.run([sys.executable, GEN, "--lines", str(lines), "--distinct", str(distinct), "--profiles",
                        str(profiles), "--seed", str(seed), "--out", log], check=True, capture_output=True)
        reader = LogReader(host=None)
        with open(log, "rb") as fh:
            reader.feed_stream(fh)
        return reader.result()["events"]


def fleet(events, hosts, seed):
    """Per-host event lists: event i is on a host with probability ~ 1/(1 + rank/100) (popularity skew)."""
    rng = random.Random(seed)
    per_host = []
    probs = [min(1.0, 1.0 / (1.0 + i / 100.0)) for i in range(len(events))]
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
    """40 answers of the kinds inventories hold: per-profile path globs, denies, ignores, capabilities."""
    profiles = sorted(set(e["profile"] for e in events if e.get("profile")))[:10]
    answers = []
    for p in profiles:
        answers.append({"profile": p, "match": {"kind": "file", "path": "/usr/lib/**"}, "answer": "allow",
                        "glob": "/usr/lib/**"})
        answers.append({"profile": p, "match": {"kind": "file", "path": "/etc/**", "mask": "r"}, "answer": "allow"})
        answers.append({"profile": p, "match": {"kind": "capability"}, "answer": "allow"})
        answers.append({"profile": p, "match": {"kind": "exec"}, "answer": "allow", "exec_mode": "ix"})
    answers.append({"profile": "*", "match": {"path": "/home/*/.ssh/**"}, "answer": "deny"})
    answers.append({"profile": "*", "match": {"path": "/proc/**"}, "answer": "ignore"})
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
    per_host = fleet(events, args.hosts, args.seed)
    host_events = sum(len(h) for h in per_host)
    answers = answers_for(events)

    merged, t_merge = timed(lambda: merge_events(per_host), args.repeat)
    res, t_rules = timed(lambda: to_rules(merged, answers, min_hosts=2), args.repeat)
    res_allow, t_allow = timed(lambda: to_rules(merged, [], default="allow"), args.repeat)
    yaml_text, t_pending = timed(lambda: pending_yaml(res, abstractions=None), args.repeat)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    s, sa = res["stats"], res_allow["stats"]
    rules = sum(len(e["rules"]) + len(e["deny"]) + sum(len(c["rules"]) + len(c["deny"])
                                                       for c in e["children"].values())
                for e in res_allow["profiles"].values())

    print("## Answers engine: merge_events + to_rules on %d hosts\n" % args.hosts)
    print("Input: %d distinct events read from a %d-line audit log (`make_auditlog.py --distinct %d --profiles %d "
          "--seed %d`), spread over %d hosts with a popularity skew: **%d host events** in, %d fleet events "
          "after merging (%d events seen by one host only).\n"
          % (len(events), args.lines, args.distinct, args.profiles, args.seed, args.hosts, host_events,
             len(merged), sum(1 for m in merged if len(m["hosts"]) == 1)))
    print("| step | wall s | CPU s | result |")
    print("|---|---:|---:|---|")
    print("| merge_events (%d lists) | %.2f | %.2f | %d events |" % (args.hosts, t_merge[0], t_merge[1], len(merged)))
    print("| to_rules, %d answers, min_hosts=2 | %.2f | %.2f | %d allowed, %d denied, %d ignored, %d pending "
          "(%d conflicts) |" % (len(answers), t_rules[0], t_rules[1], s["allowed"], s["denied"], s["ignored"],
                                s["pending"], s["conflicts"]))
    print("| to_rules, default=allow | %.2f | %.2f | %d rules, %d pending (exec without mode), %d unsupported |"
          % (t_allow[0], t_allow[1], rules, sa["pending"], sa["unsupported"]))
    print("| pending_answers (YAML) | %.2f | %.2f | %d lines, %d KiB |"
          % (t_pending[0], t_pending[1], yaml_text.count("\n"), len(yaml_text.encode()) // 1024))
    print("\nBest of %d runs (lowest CPU time; the machine is shared). Peak RSS of the process: %.0f MiB. "
          "Command: `tests/bench/bench_rules.py --hosts %d --lines %d --distinct %d --profiles %d`.\n"
          % (args.repeat, rss_mb, args.hosts, args.lines, args.distinct, args.profiles))
    sys.stderr.write(json.dumps({"merge": t_merge, "to_rules": t_rules, "allow": t_allow, "pending": t_pending}) + "\n")


if __name__ == "__main__":
    main()
