"""Capability rules: every Linux capability name compiles, numbers map by the kernel's table
(include/uapi/linux/capability.h), corpus events give the corpus rule, coverage by name sets."""
import glob
import os

import pytest
from rulecore_support import compile_rules

from ansible_collections.armada.apparmor.plugins.module_utils import logparse
from ansible_collections.armada.apparmor.plugins.module_utils.rules import parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.capability import (
    CAPABILITY_NAMES,
    CapabilityRule,
    capability_name,
)


def test_every_name_compiles():
    # each name in its own rule, plus the bare form and a multi-name rule
    lines = ["capability %s," % name for name in CAPABILITY_NAMES]
    lines += ["audit deny capability sys_module,", "capability setuid setgid,"]
    ok, out = compile_rules(lines)
    assert ok, out
    ok, out = compile_rules(["capability,"])
    assert ok, out


def test_numbers_from_the_kernel_table():
    # capability.h: CAP_CHOWN 0, CAP_NET_ADMIN 12, CAP_SYS_ADMIN 21, CAP_CHECKPOINT_RESTORE 40
    assert capability_name(0) == "chown"
    assert capability_name("12") == "net_admin"
    assert capability_name(21) == "sys_admin"
    assert capability_name(40) == "checkpoint_restore"
    assert capability_name(41) is None
    assert capability_name("CAP_NET_RAW") == "net_raw"
    assert capability_name(True) is None


@pytest.mark.parametrize("text,canonical", [
    ("capability net_raw,", "capability net_raw,"),
    ("capability setuid setgid,", "capability setgid setuid,"),  # kernel number order
    ("audit deny capability sys_admin, # never", "audit deny capability sys_admin,"),
    ("capability,", "capability,"),
])
def test_parse_render(text, canonical):
    rule = parse_rule(text)
    assert isinstance(rule, CapabilityRule)
    assert rule.render() == canonical
    assert parse_rule(canonical) == rule


@pytest.mark.parametrize("bad", ["capability net_rawx,", "capability NET_RAW,", "capability net_raw, capability x,",
                                 "capability (x),"])
def test_bad(bad):
    with pytest.raises(RuleParseError):
        CapabilityRule.parse(bad)


def test_covers():
    assert parse_rule("capability,").covers(parse_rule("capability net_raw,"))
    assert parse_rule("capability setuid setgid,").covers(parse_rule("capability setuid,"))
    assert not parse_rule("capability setuid,").covers(parse_rule("capability setuid setgid,"))
    assert not parse_rule("capability net_raw,").covers(parse_rule("capability,"))
    assert not parse_rule("deny capability net_raw,").covers(parse_rule("capability net_raw,"))


def test_event_from_number_or_name():
    raw = rule_from_event({"kind": "capability", "capability": 13}).render()
    ptrace = rule_from_event({"kind": "capability", "capname": "sys_ptrace"}).render()
    assert raw == "capability net_raw,"
    assert ptrace == "capability sys_ptrace,"
    ok, out = compile_rules([raw, ptrace])
    assert ok, out
    assert rule_from_event({"kind": "capability", "capability": 99}) is None


def test_corpus_capability_events():
    from armada_corpus import corpus_dir

    compared = 0
    for path in sorted(glob.glob(os.path.join(corpus_dir(), "*.in"))):
        base = path[:-3]
        if not os.path.exists(base + ".profile"):
            continue
        with open(path, "rb") as fh:
            events = [logparse.parse_line(ln)["event"] for ln in fh.read().splitlines() if ln.strip()]
        events = [e for e in events if e and e["kind"] == "capability"]
        if len(events) != 1:
            continue
        with open(base + ".profile", encoding="utf-8") as fh:
            expected = [parse_rule(ln) for ln in fh if ln.strip().endswith(",")]
        assert [rule_from_event(events[0])] == expected, base
        compared += 1
    print("\ncorpus capability cases compared: %d" % compared)
    assert compared >= 5
