"""coverage.ProfileIndex against the real abstractions installed in /etc/apparmor.d.

Expected decisions are read off the abstraction files themselves (quoted next to each case) and
AppArmor's rules: deny wins over allow, ``owner`` rules only match owner accesses, ``w`` grants
``a``, a ``//null-`` child is folded into its parent.
"""
import os
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulecore_support import COUNTS, EXAMPLES, count, hostile_path

from ansible_collections.armada.apparmor.plugins.module_utils import aaglob
from ansible_collections.armada.apparmor.plugins.module_utils.coverage import ProfileIndex
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import mask_to_perms

APPARMOR_D = "/etc/apparmor.d"
if not os.path.isfile(os.path.join(APPARMOR_D, "abstractions", "base")):
    pytest.skip("the real abstractions are needed (Debian: apt install apparmor)", allow_module_level=True)

PROFILE = """include <tunables/global>
profile t /usr/bin/t {
  include <abstractions/base>
  include <abstractions/nameservice>
  include <abstractions/private-files>
  include if exists <local/does-not-exist>
  /srv/data/** r,
  owner /home/*/notes w,
  deny /srv/data/secret rw,
  /usr/bin/tool ix,
  capability net_raw,
  deny capability sys_module,
  network inet stream,
  ^hat {
    /hat/file r,
  }
}
"""


@pytest.fixture(scope="module")
def index():
    return ProfileIndex.from_text(PROFILE, APPARMOR_D)


def ev(path, mask, profile="t", owner=False, denied=True):
    return {"kind": "file", "profile": profile, "path": path,
            "mask": {"requested": mask, "denied": mask if denied else ""}, "owner": owner}


CASES = [
    # abstractions/base: "@{etc_ro}/ld.so.cache mr," with tunables/etc "@{etc_ro}=/etc/ /usr/etc/"
    (ev("/etc/ld.so.cache", "r"), "allow"),
    (ev("/usr/etc/ld.so.cache", "mr"), "allow"),
    (ev("/etc/ld.so.cache", "w"), None),
    # abstractions/nameservice: "@{etc_ro}/passwd r,"
    (ev("/etc/passwd", "r"), "allow"),
    # abstractions/base: "/dev/null rw," (w grants a)
    (ev("/dev/null", "rw"), "allow"),
    (ev("/dev/null", "a"), "allow"),
    # abstractions/private-files: "deny @{HOME}/.*history mrwkl," ; tunables/home @{HOME}=/home/*/ /root/
    (ev("/home/bob/.bash_history", "r"), "deny"),
    (ev("/root/.bash_history", "w"), "deny"),
    # own rules
    (ev("/srv/data/a/b", "r"), "allow"),
    (ev("/srv/data/a/b", "w"), None),
    (ev("/srv/data/secret", "r"), "deny"),  # deny wins over /srv/data/** r
    (ev("/home/bob/notes", "w", owner=True), "allow"),
    (ev("/home/bob/notes", "w", owner=False), None),  # owner rule, non-owner access
    # abstractions/base: "owner @{HOME}/.Private/** mrixwlk,"
    (ev("/home/bob/.Private/x", "r", owner=True), "allow"),
    (ev("/home/bob/.Private/x", "r", owner=False), None),
    # old OWNER::OTHER masks
    (ev("/home/bob/notes", "w::"), "allow"),
    (ev("/home/bob/notes", "::w"), None),
    ({"kind": "exec", "profile": "t", "path": "/usr/bin/tool", "mask": {"requested": "x"}}, "allow"),
    ({"kind": "exec", "profile": "t", "path": "/usr/bin/other", "mask": {"requested": "x"}}, None),
    ({"kind": "capability", "profile": "t", "capname": "net_raw"}, "allow"),
    ({"kind": "capability", "profile": "t", "capname": "sys_module"}, "deny"),
    ({"kind": "capability", "profile": "t", "capname": "sys_admin"}, None),
    # hats are their own profiles; //null- children fold into the parent
    (ev("/hat/file", "r", profile="t//hat"), "allow"),
    (ev("/hat/file", "r", profile="t"), None),
    (ev("/srv/data/x", "r", profile="t//null-/bin/true"), "allow"),
    (ev("/srv/data/x", "r", profile="/usr/bin/t"), "allow"),  # by attachment
    (ev("/srv/data/x", "r", profile="unknown"), None),
    ({"kind": "status", "profile": "t"}, None),
]


@pytest.mark.parametrize("event,expected", CASES)
def test_decisions(index, event, expected):
    assert index.decision(event) == expected


def test_network_rule_through_other_kinds(index):
    event = {"kind": "network", "profile": "t", "family": "inet", "sock_type": "stream", "protocol": 6,
             "mask": {"requested": "create", "denied": "create"}}
    assert index.decision(event) == "allow"
    # abstractions/nameservice also grants "network inet6 stream," and "network netlink raw,"
    assert index.decision(dict(event, family="inet6")) == "allow"
    assert index.decision(dict(event, family="packet", sock_type="raw")) is None


@pytest.mark.parametrize("rule,expected", [
    ("/etc/passwd r,", True),
    ("/etc/** r,", False),
    ("/srv/data/*/x r,", True),
    ("/srv/** r,", False),
    ("deny /srv/data/secret r,", True),
    ("deny /srv/data/secret rwk,", False),
    ("include <abstractions/base>", True),
    ("include <abstractions/consoles>", False),
    ("capability net_raw,", True),
    ("/usr/bin/tool ix,", True),
    ("/usr/bin/tool Px,", False),
    ("owner /home/bob/notes w,", True),
    ("/home/bob/notes w,", False),
    ("@{HOME}/.Private/x r,", False),
    ("owner @{HOME}/.Private/x r,", True),
])
def test_covers_rule(index, rule, expected):
    assert index.covers_rule(parse_rule(rule), "t") is expected


def test_warnings_for_missing_includes():
    idx = ProfileIndex.from_text("profile x {\n  include <abstractions/nope>\n  /a r,\n}\n", APPARMOR_D)
    assert any("abstractions/nope" in w for w in idx.warnings)
    assert idx.decision(ev("/a", "r", profile="x")) == "allow"


def test_load_real_directory():
    idx = ProfileIndex.load(APPARMOR_D)
    assert idx.warnings == []
    assert "/usr/bin/man" in idx.profile_names()
    # usr.bin.man: "/** mrixwlk," and "deny capability dac_override,"
    assert idx.decision(ev("/etc/anything", "rw", profile="/usr/bin/man")) == "allow"
    assert idx.decision({"kind": "capability", "profile": "/usr/bin/man", "capname": "dac_override"}) == "deny"


# ---- the index answers exactly what a full scan of the same rules answers -------------------------
PATHS = ["/srv/data/a", "/srv/data/secret", "/etc/passwd", "/etc/ld.so.cache", "/home/bob/notes",
         "/home/bob/.bash_history", "/dev/null", "/usr/share/locale/de/x.mo", "/proc/1/maps", "/tmp/x",
         "/usr/lib/x86_64-linux-gnu/libc.so.6", "/home/bob/.Private/k", "/var/lib/sss/mc/passwd"]


def full_scan(index, event):
    """Decision from every file rule of the profile (no buckets), matched with aaglob.matches."""
    rs = index.ruleset(event["profile"])
    conv = mask_to_perms(event["mask"]["requested"])
    owner = event["owner"]
    perms = conv["owner"] | conv["other"]
    if conv["owner"] and not conv["other"]:
        owner = True
    granted = set()
    entries = [e for bucket in rs.file_buckets.values() for e in bucket]
    for e in entries:
        if e.owner and not owner:
            continue
        if not aaglob.matches(e.pattern, event["path"], index.variables):
            continue
        if e.deny and perms & e.perms:
            return "deny"
        if not e.deny:
            granted |= e.perms
    if "w" in granted:
        granted.add("a")
    return "allow" if perms <= granted else None


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(PATHS), st.sampled_from(["r", "w", "rw", "a", "m", "k", "l", "mr", "r::"]), st.booleans())
def test_index_equals_full_scan(path, mask, owner):
    count("coverage.index_vs_scan")
    index = _INDEX
    event = ev(path, mask, owner=owner)
    assert index.decision(event) == full_scan(index, event)


_INDEX = ProfileIndex.from_text(PROFILE, APPARMOR_D)


def test_ten_thousand_events_are_fast():
    """Guard only (the real measurement is tests/bench/bench_coverage.py): 10,000 decisions."""
    rng = random.Random(5)
    events = [ev(rng.choice(PATHS) + ("/%d" % rng.randrange(1000) if rng.random() < 0.5 else ""),
                 rng.choice(["r", "w", "rw", "mr"]), owner=rng.random() < 0.5) for _ in range(10000)]
    t0 = time.process_time()
    results = [_INDEX.decision(e) for e in events]
    cpu = time.process_time() - t0
    print("\n10,000 decisions: %.3f s CPU (%s)" % (cpu, {r: results.count(r) for r in set(results)}))
    assert cpu < 5.0


@settings(max_examples=EXAMPLES, deadline=None)
@given(hostile_path, st.sampled_from(["r", "w", "rw", "mr", "k", "wc"]), st.booleans())
def test_fuzz_hostile_event_is_covered_by_its_own_rule(path, mask, owner):
    """The rule made from a hostile event, added to a profile, covers exactly that event (and the
    index does not suddenly allow a sibling path)."""
    from ansible_collections.armada.apparmor.plugins.module_utils import profile_model as pm
    from ansible_collections.armada.apparmor.plugins.module_utils.rules import rule_from_event

    count("coverage.hostile_events")
    event = ev(path, mask, owner=owner)
    pf = pm.ProfileFile.parse("profile t {\n  /fixed r,\n}\n")
    pf.add_rules("t", [rule_from_event(event)])
    idx = ProfileIndex.from_text(pf.render(), APPARMOR_D, variables={})
    assert idx.decision(event) == "allow"
    assert idx.covers_rule(rule_from_event(event), "t")
    assert idx.decision(ev(path + "x", mask, owner=owner)) is None


def test_zz_case_count():
    print("\nfuzz cases: %s" % {k: v for k, v in COUNTS.items() if k.startswith("coverage.")})
    assert COUNTS.get("coverage.index_vs_scan", 0) >= min(EXAMPLES, 10)
    assert COUNTS.get("coverage.hostile_events", 0) >= min(EXAMPLES, 10)
