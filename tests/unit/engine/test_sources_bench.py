"""Cursor cost on the bench log: first read (parse included) and the second, unchanged read.

As a test it runs on a 20,000-line log from ``tests/bench/tools/make_auditlog.py`` and requires the
second read through the cursor to take under 0.1 s. As a script it measures any file:

    .venv/bin/python tests/unit/engine/test_sources_bench.py /path/to/audit.log

(the figures in docs/cursor.md come from the 1,000,000-line file, default seed).
"""
import json
import os
import resource
import subprocess
import sys
import time

from ansible_collections.armada.apparmor.plugins.module_utils import cursor as cur
from ansible_collections.armada.apparmor.plugins.module_utils import logsources as ls
from ansible_collections.armada.apparmor.plugins.module_utils.logreader import LogReader

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_GEN = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench", "tools", "make_auditlog.py")


def measure(path):
    """Read ``path`` through a new cursor, then again from the returned position; return figures."""
    srcs, _ = ls.resolve_sources([path])

    def run(positions):
        reader = LogReader(host="bench")
        t0 = time.perf_counter()
        new, reports = ls.read_all(srcs, positions, reader.feed)
        res = reader.result()
        return time.perf_counter() - t0, new, reports, res

    t1, pos, reps, res = run({})
    token = cur.make_token("bench", {}, pos)
    t0 = time.perf_counter()
    _, reps_only = ls.read_all(srcs, pos, lambda d, k: None)
    read_only = time.perf_counter() - t0
    t2, pos2, reps2, res2 = run(pos)
    return {
        "file_bytes": reps[0]["bytes"], "first_read_s": round(t1, 3), "events": len(res["events"]),
        "apparmor_bytes": res["stats"]["apparmor_bytes"],
        "events_json_bytes": len(json.dumps(res["events"], separators=(",", ":"))),
        "token_bytes": len(token), "second_read_s": round(t2, 4), "second_read_bytes": reps2[0]["bytes"],
        "second_read_events": len(res2["events"]), "second_read_only_s": round(read_only, 4),
        "unchanged_position": pos2 == pos, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def test_second_read_through_cursor_is_fast(tmp_path):
    assert os.path.exists(BENCH_GEN), "the bench log generator is missing at %s" % BENCH_GEN
    log = str(tmp_path / "audit.log")
    subprocess.run([sys.executable, BENCH_GEN, "--lines", "20000", "--out", log], check=True,
                   capture_output=True)
    m = measure(log)
    assert m["file_bytes"] == os.path.getsize(log)
    assert m["events"] > 0 and m["second_read_bytes"] == 0 and m["second_read_events"] == 0
    assert m["unchanged_position"] is True
    assert m["second_read_s"] < 0.1, m


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1]), indent=1))
