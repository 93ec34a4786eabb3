"""mount / remount / umount rules: apparmor.d(5) examples and option semantics, corpus cases,
compile, hostile mount points / sources / fstypes."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rulekind_support import (
    EXAMPLES,
    PARSER,
    PARSER_MISSING,
    check_compiles,
    compile_queue,
    compile_rules,
    corpus_case,
    hostile_text,
    one_line,
)

from ansible_collections.armada.apparmor.plugins.module_utils.aaescape import pattern_literal
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.mount import MountRule, RemountRule, UmountRule

MAN_EXAMPLES = [
    ("mount,", "mount,"),
    ("mount /dev/foo,", "mount /dev/foo,"),
    ("mount options=ro /dev/foo,", "mount options=(ro) /dev/foo,"),
    ("mount options=(ro,atime) /dev/foo,", "mount options=(atime, ro) /dev/foo,"),
    ("mount options in (ro,atime) /dev/foo,", "mount options in (atime, ro) /dev/foo,"),
    ("mount -> /mnt/**,", "mount -> /mnt/**,"),
    ("mount options=ro -> /mnt/**,", "mount options=(ro) -> /mnt/**,"),
    ("mount fstype=ext3 options=(rw,atime) /dev/sdb1 -> /mnt/stick/,",
     "mount fstype=ext3 options=(atime, rw) /dev/sdb1 -> /mnt/stick/,"),
    ("mount options=(ro, atime) options in (nodev, user) /dev/foo -> /mnt/,",
     "mount options=(atime, ro) options in (nodev, user) /dev/foo -> /mnt/,"),
    ("mount fstype in (ext3, ext4) -> /mnt/,", "mount fstype in (ext3, ext4) -> /mnt/,"),
    ("remount /tmp/foo/,", "remount /tmp/foo/,"),
    ("remount options=(ro) /,", "remount options=(ro) /,"),
    ("umount /mnt/**,", "umount /mnt/**,"),
    ("unmount /mnt/,", "umount /mnt/,"),
    ("deny umount,", "deny umount,"),
    ('mount "/dev/my disk" -> "/mnt/my disk/",', 'mount "/dev/my disk" -> "/mnt/my disk/",'),
]


@pytest.mark.parametrize("text,canonical", MAN_EXAMPLES)
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, MountRule)
    assert rule.render() == canonical
    assert parse_rule(canonical) == rule


def test_kinds():
    assert type(parse_rule("mount,")) is MountRule
    assert type(parse_rule("remount /x/,")) is RemountRule
    assert type(parse_rule("umount /x/,")) is UmountRule


@pytest.mark.parametrize("bad", ["mount /a /b,", "umount /a -> /b,", "mount -> /a -> /b,",
                                 "mount fstype=ext3 fstype=ext4,", "mount options=(ro,"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        parse_rule(bad)


# Option semantics from apparmor.d(5) "Mount Rules" (items 1-3).
@pytest.mark.parametrize("general,specific,expected", [
    ("mount options=ro /dev/foo -> /mnt/,", "mount options=ro /dev/foo -> /mnt/,", True),
    ("mount options=ro /dev/foo -> /mnt/,", "mount options=(ro,atime) /dev/foo -> /mnt/,", False),
    ("mount options in (ro,atime) /dev/foo -> /mnt/,", "mount options=(ro) /dev/foo -> /mnt/,", True),
    ("mount options in (ro,atime) /dev/foo -> /mnt/,", "mount options=(ro,atime) /dev/foo -> /mnt/,", True),
    ("mount options in (ro,atime) /dev/foo -> /mnt/,", "mount options=(ro,sync) /dev/foo -> /mnt/,", False),
    ("mount options in (ro,atime) /dev/foo -> /mnt/,", "mount /dev/foo -> /mnt/,", False),
    ("mount options=ro options=atime,", "mount options=atime /dev/foo -> /mnt/,", True),
    ("mount options=ro options=atime,", "mount options=(ro,atime) /dev/foo -> /mnt/,", False),
    ("mount,", "mount fstype=ext3 options=(rw,atime) /dev/sdb1 -> /mnt/stick/,", True),
    ("mount -> /mnt/**,", "mount /dev/foo1 -> /mnt/deep/path/foo2,", True),
    ("mount -> /mnt/*,", "mount /dev/foo1 -> /mnt/deep/path/foo2,", False),
    ("mount fstype=(ext3, ext4),", "mount fstype=ext4 -> /x/,", True),
    ("mount fstype=ext3,", "mount -> /x/,", False),
    ("mount,", "umount /x/,", False),
    ("umount /mnt/**,", "umount /mnt/a/,", True),
])
def test_covers(general, specific, expected):
    assert parse_rule(general).covers(parse_rule(specific)) is expected


@pytest.mark.parametrize("case", ["testcase_mount_01", "testcase_mount_02", "testcase_remount_01"])
def test_corpus(case):
    events, expected = corpus_case(case)
    rendered = [rule_from_event(ev).render("5.0") for ev in events]
    assert rendered == expected
    assert [rule_from_event(ev).render("3.0") for ev in events] == expected


def test_umount_and_remount_events():
    assert rule_from_event({"kind": "umount", "path": "/mnt/x/"}).render() == "umount /mnt/x/,"
    # a remount record without the flag still needs a rule that allows remounting
    rule = rule_from_event({"kind": "remount", "path": "/x/", "flags": "ro"})
    assert rule.render() == "mount options=(remount, ro) -> /x/,"
    # an unknown flag word is never written
    assert MountRule.from_event({"kind": "mount", "path": "/x/", "flags": "ro, evil) /** rwx"}) is None


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_abi30_renderings_compile():
    lines = [parse_rule(t).render("3.0") for t, _c in MAN_EXAMPLES]
    for case in ("testcase_mount_01", "testcase_mount_02", "testcase_remount_01"):
        lines += [rule_from_event(ev).render("3.0") for ev in corpus_case(case)[0]]
    ok, err = compile_rules(lines)
    assert ok, err


CASES = {"n": 0}
LATER = []  # lines queued for batch compilation on long runs


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
@settings(max_examples=EXAMPLES, deadline=None)
@given(src=hostile_text, mnt=hostile_text, fstype=hostile_text, kind=st.sampled_from(["mount", "umount"]))
def test_fuzz_hostile(src, mnt, fstype, kind):
    CASES["n"] += 1
    ev = {"kind": kind, "path": "/" + mnt, "srcname": src, "fstype": fstype, "flags": "rw, nosuid"}
    rule = rule_from_event(ev)
    text = rule.render("3.0")
    assert one_line(text)
    back = parse_rule(text)
    assert back == rule and pattern_literal(back.mountpoint) == "/" + mnt
    if kind == "mount":
        assert pattern_literal(back.source) == src
    check_compiles(text, LATER)


@pytest.mark.skipif(not PARSER, reason=PARSER_MISSING)
def test_zz_fuzz_case_count():
    print("fuzz mount: %d cases" % CASES["n"])
    assert CASES["n"] > 0
    bad = compile_queue(LATER)
    assert not bad, bad[:3]
