#!/usr/bin/env python3
"""Benchmark: coverage decisions (coverage.ProfileIndex) for 10,000+ events against profiles that
include the real abstractions.

Prints one markdown section on stdout (tests/bench/run.py collects it into docs/benchmarks.md).

Input: a realistic log from tests/bench/tools/make_auditlog.py read once with our LogReader (its
distinct events; more log lines are generated until there are at least ``--events``). For every
profile seen, a profile file is written into a scratch apparmor.d whose ``abstractions/`` and
``tunables/`` are the real ones from /etc/apparmor.d: it includes abstractions/base and
abstractions/nameservice, and holds rules for about half of that profile's events (exact rules,
``/dir/*`` globs, a few deny rules, hats for ``//child`` events), so decisions are a realistic mix of
allow / deny / not covered.

Timed in this process: ProfileIndex.load of the scratch directory; ``decision(event)`` for every
event (the ``denials`` module's skip_covered); ``covers_rule`` for the rule each event needs (the
``rules`` module's dedupe). For comparison, a pairwise scan (every rule of the profile and its
includes asked ``covers``, the way aa-logprof checks) is timed on a sample and extrapolated, and its
answers are checked against the index on that sample.

Usage: bench_coverage.py [--events 10000] [--profiles 40] [--sample 300] [--seed 7] [--repeat 3]
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tests", "bench", "tools")  # vendored, see tests/corpus/README.md
GEN = os.path.join(TOOLS, "make_auditlog.py")
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import escape_glob  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.coverage import ProfileIndex  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.rules import rule_from_event  # noqa: E402
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule  # noqa: E402


def read_events(want, profiles, seed):
    lines, distinct = 400000, max(15000, int(want * 1.6))
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "audit.log")
        while True:
            subprocess.run([sys.executable, GEN, "--lines", str(lines), "--distinct", str(distinct), "--profiles",
                            str(profiles), "--seed", str(seed), "--out", log], check=True, capture_output=True)
            reader = LogReader(host=None)
            with open(log, "rb") as fh:
                reader.feed_stream(fh)
            events = reader.result()["events"]
            if len(events) >= want or lines > 3000000:
                return events, lines
            lines *= 2
            distinct *= 2


def _h(text):
    return zlib.crc32(text.encode("utf-8", "surrogateescape"))


def write_profiles(events, apparmor_d):
    """One file per top-level profile; rules for about half of its events."""
    for sub in ("abstractions", "tunables"):
        os.symlink(os.path.join("/etc/apparmor.d", sub), os.path.join(apparmor_d, sub))
    by_profile = {}
    for ev in events:
        by_profile.setdefault(ev.get("parent") or ev.get("profile"), []).append(ev)
    n_rules = 0
    for parent, evs in sorted(by_profile.items()):
        body = {None: []}
        for ev in evs:
            child = ev.get("child")
            h = _h(ev["id"])
            if h % 2:
                continue  # leave this one uncovered
            try:
                rule = rule_from_event(ev)
            except ValueError:
                rule = None
            if rule is None:
                continue
            if isinstance(rule, FileRule) and rule.exec_mode is None and h % 7 == 0:
                rule.deny = True
            elif isinstance(rule, FileRule) and rule.exec_mode is None and h % 5 == 0:
                directory = ev["path"].rsplit("/", 1)[0] + "/"
                rule = FileRule(escape_glob(directory) + "*", rule.perms, owner=rule.owner)
            body.setdefault(child, []).append(rule.render("3.0"))
            n_rules += 1
        lines = ["include <tunables/global>", "profile %s {" % escape_glob(parent) if " " not in parent else
                 "profile \"%s\" {" % parent, "  include <abstractions/base>", "  include <abstractions/nameservice>"]
        lines += ["  " + r for r in sorted(set(body[None]))]
        for child, rules in sorted((k, v) for k, v in body.items() if k):
            lines.append("  ^%s {" % child)
            lines += ["    " + r for r in sorted(set(rules))]
            lines.append("  }")
        lines.append("}")
        name = parent.strip("/").replace("/", ".") or "root"
        with open(os.path.join(apparmor_d, name), "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write("\n".join(lines) + "\n")
    return len(by_profile), n_rules


def best(fn, repeat):
    wall, cpu, result = None, None, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        w, c = time.perf_counter() - t0, time.process_time() - c0
        wall = w if wall is None else min(wall, w)
        cpu = c if cpu is None else min(cpu, c)
    return wall, cpu, result


def pairwise_rules(index, profile):
    rs = index.ruleset(profile)
    if rs is None:
        return []
    rules = [e.rule for entries in rs.file_buckets.values() for e in entries] + list(rs.all_files)
    for kind_rules in rs.by_kind.values():
        rules.extend(kind_rules)
    seen, out = set(), []
    for r in rules:
        if id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--profiles", type=int, default=40)
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    args, _rest = ap.parse_known_args()

    events, lines = read_events(args.events, args.profiles, args.seed)
    with tempfile.TemporaryDirectory() as apparmor_d:
        n_profiles, n_rules = write_profiles(events, apparmor_d)
        load_wall, load_cpu, index = best(lambda: ProfileIndex.load(apparmor_d), args.repeat)
        dec_wall, dec_cpu, decisions = best(lambda: [index.decision(ev) for ev in events], args.repeat)
        needed = []
        for ev in events:
            try:
                rule = rule_from_event(ev)
            except ValueError:
                rule = None
            if rule is not None:
                needed.append((rule, ev.get("profile")))
        cov_wall, cov_cpu, covered = best(lambda: [index.covers_rule(r, p) for r, p in needed], args.repeat)

        step = max(1, len(events) // args.sample)
        sample = events[::step][:args.sample]
        t0 = time.perf_counter()
        naive = []
        for ev in sample:
            rule = rule_from_event(ev)
            rules = pairwise_rules(index, ev.get("profile"))
            hit = None
            if rule is not None:
                for cand in rules:
                    if cand.covers(rule, index.variables):
                        hit = "allow"
                        break
            naive.append(hit)
        naive_wall = time.perf_counter() - t0
        idx_sample = [index.decision(ev) for ev in sample]
        # a single covering allow rule (pairwise) must also be an index "allow" (the index also
        # combines rules: /x r + /x w cover an rw access)
        # "deny" is right when a deny rule also matches (deny wins in AppArmor; pairwise ignores it)
        deny_wins = sum(1 for a, b in zip(naive, idx_sample) if a == "allow" and b == "deny")
        disagree_cases = [(ev, b) for ev, a, b in zip(sample, naive, idx_sample) if a == "allow" and b is None]
        if os.environ.get("BENCH_DEBUG"):
            for ev, b in disagree_cases:
                sys.stderr.write("DISAGREE %s %r\n" % (b, {k: ev.get(k) for k in ("kind", "profile", "path", "mask",
                                                                                      "owner", "family", "peer")}))
        disagree = len(disagree_cases)
        rules_per_profile = sum(len(pairwise_rules(index, ev.get("profile"))) for ev in sample) / max(1, len(sample))

    counts = {}
    for d in decisions:
        counts[str(d)] = counts.get(str(d), 0) + 1
    per_event_naive = naive_wall / max(1, len(sample))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = []
    out.append("## Coverage: %d events against %d profiles (+ real abstractions)" % (len(events), n_profiles))
    out.append("")
    out.append("Log: make_auditlog.py, %d lines, %d distinct events read with LogReader; %d generated rules "
               "(exact, `/dir/*` globs, deny), every profile including abstractions/base and "
               "abstractions/nameservice (%.0f rules per profile with includes). Best of %d runs."
               % (lines, len(events), n_rules, rules_per_profile, args.repeat))
    out.append("")
    out.append("| step | wall s | CPU s | per event |")
    out.append("|---|---:|---:|---:|")
    out.append("| ProfileIndex.load (parse + index + includes) | %.3f | %.3f | |" % (load_wall, load_cpu))
    out.append("| decision() for every event | %.3f | %.3f | %.1f µs |"
               % (dec_wall, dec_cpu, 1e6 * dec_wall / max(1, len(events))))
    out.append("| covers_rule() for every needed rule (%d) | %.3f | %.3f | %.1f µs |"
               % (len(needed), cov_wall, cov_cpu, 1e6 * cov_wall / max(1, len(needed))))
    out.append("| pairwise scan (aa-logprof style), %d-event sample, extrapolated to %d | %.1f (est.) | | %.0f µs |"
               % (len(sample), len(events), per_event_naive * len(events), 1e6 * per_event_naive))
    out.append("")
    out.append("Decisions: %s. Target: 10,000 events in under 2 s -> %s (%.2f s for %d). "
               "Sample check: of %d events a single rule covers pairwise, %d are `deny` in the index (a deny rule "
               "also matches: deny wins) and %d are not covered (must be 0)."
               % (", ".join("%s %d" % kv for kv in sorted(counts.items())),
                  "met" if dec_wall * 10000.0 / max(1, len(events)) < 2.0 else "NOT met", dec_wall, len(events),
                  sum(1 for a in naive if a == "allow"), deny_wins, disagree))
    out.append("Peak RSS %.0f MiB. covers_rule answered True for %d of %d rules."
               % (rss, sum(1 for c in covered if c), len(covered)))
    print("\n".join(out))
    return 0 if disagree == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
