"""Rendering fuzz: hostile names for EVERY rule kind of the registry (rules/__init__.py) -> rendered rule
-> parsed back to exactly the same rule -> compiled by the real ``apparmor_parser -QK``.

Per kind, hypothesis draws ARMADA_FUZZ_EXAMPLES cases (``make fuzz``: 10000; default 200). Most kinds
are driven through the real pipeline: an event in the docs/events.md schema -> ``rule_from_event``; the
``*_log`` kinds start one step earlier, from an audit record where the kernel hex-encoded the name
(``name=2F6120...``), read by ``logparse.parse_line``. Each case checks:

* the rendered text is ONE printable line (no line separator of any kind can end the rule early);
* ``parse_rule(text)`` gives back a rule equal to the rendered one (same kind, same fields);
* the hostile name is still exactly the literal the event carried (``literal_of``, written from
  apparmor.d(5) in fuzz_support.py, not with the engine's own escape helpers);
* every rendered line is compiled with apparmor_parser (batched; a failing batch is bisected to the
  failing line). A rejection is a failure: no case is ever filtered by whether the parser accepts it.

Kinds whose rules need ABI 4.0 (userns, io_uring, mqueue, network/unix forms with accesses that 3.0
cannot express) are rendered for ABI 4.0 and checked by parse-back only: the installed parser is
3.0.8 and the lab kernel's features file has no such classes. The summary says so per kind.
"""
import re

import pytest
from fuzz_support import EXAMPLES, REPORT, bump, compile_batches, compile_text, hostile, literal_of, loggable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.armada.apparmor.plugins.module_utils import logparse, profile_model
from ansible_collections.armada.apparmor.plugins.module_utils.rules import RULE_CLASSES, parse_rule, rule_from_event
from ansible_collections.armada.apparmor.plugins.module_utils.rules._kindutil import AbiError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.base import RuleParseError
from ansible_collections.armada.apparmor.plugins.module_utils.rules.capability import CAPABILITY_NAMES
from ansible_collections.armada.apparmor.plugins.module_utils.rules.file import FileRule, LinkRule
from ansible_collections.armada.apparmor.plugins.module_utils.rules.include import IncludeRule, VariableRule

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def collapse(path):
    """apparmor_parser collapses runs of slashes in paths to one, except exactly two leading slashes
    (POSIX leaves '//' at the start implementation-defined; the parser keeps it)."""
    if path.startswith("//") and not path.startswith("///"):
        return "/" + re.sub("/+", "/", path[1:])
    return re.sub("/+", "/", path)


def mask(words):
    return st.sampled_from(words).map(lambda w: {"requested": w, "denied": w})


def base_event(kind, **fields):
    ev = {"kind": kind, "host": "h", "profile": "/usr/bin/x", "parent": "/usr/bin/x", "child": None,
          "operations": [], "modes": ["DENIED"], "count": 1}
    ev.update(fields)
    return ev


# ---- one strategy per kind: (event or rule, {attribute: expected literal}) --------------------------
# Expected literals are the hostile names exactly as the event carried them (paths: slashes collapsed,
# which is AppArmor's own path semantics).

def _file(name, m, owner):
    path = "/" + name
    return base_event("file", path=path, mask=m, owner=owner), {"path": collapse(path)}


def _exec(name, mode, target):
    ev = base_event("exec", path="/" + name, mask={"requested": "x", "denied": "x"}, exec_mode=mode)
    expect = {"path": collapse("/" + name)}
    if mode[0] in "PC" and target is not None:
        # an exec target is written in AppArmor pattern syntax (the parser reads escapes in it), so a
        # literal profile name is given escaped, as an answer author would write it
        ev["exec_target"] = _escape(target)
        expect["target"] = target
    return ev, expect


def _network(fam, typ, m, addr):
    # a hostile address is not an IP: the rule must leave it out, never write it
    ev = base_event("network", family=fam, sock_type=typ, protocol=0, laddr=addr, faddr=addr)
    if m is not None:
        ev["mask"] = m
    return ev, {}


def _unix(addr, peer_addr, typ, m):
    ev = base_event("unix", family="unix", sock_type=typ, protocol=0, mask=m, addr="@" + addr)
    expect = {"addr": "@" + addr}
    if peer_addr is not None:
        ev["peer_addr"] = "@" + peer_addr
        if m["denied"] in ("connect", "send", "receive", "accept"):
            # peer conditionals exist only for these accesses (apparmor_parser refuses them otherwise)
            expect["peer_addr"] = "@" + peer_addr
    return ev, expect


def _dbus(bus, path, iface, member, peer, access):
    ev = base_event("dbus", bus=bus, dbus_path="/" + path, interface=iface, member=member, peer=peer,
                    mask={"requested": access, "denied": access})
    return ev, {"bus": bus, "path": "/" + path, "interface": iface, "member": member}


def _dbus_bind(bus, name):
    return base_event("dbus", bus=bus, dbus_name=name, mask={"requested": "bind", "denied": "bind"}), \
        {"bus": bus, "name": name}


def _mount(kind, point, src, fstype):
    ev = base_event(kind, path="/" + point)
    expect = {"mountpoint": "/" + point}
    if kind == "mount":
        ev.update(srcname="/" + src, fstype=fstype, flags="rw, nosuid")
        expect["source"] = "/" + src
    elif kind == "remount":
        ev["flags"] = "ro"
    return ev, expect


SIGNALS = ["hup", "int", "quit", "kill", "term", "usr1", "usr2", "stop", "cont"]
STRATEGIES = {
    "file": st.builds(_file, hostile, mask(["r", "w", "a", "rw", "m", "k", "l", "wc", "d", "rwlk", "rk"]),
                      st.booleans()),
    "exec": st.builds(_exec, hostile, st.sampled_from(["ix", "Px", "Cx", "Ux", "px", "cx", "ux", "Pix", "Cix"]),
                      st.one_of(st.none(), hostile)),
    "capability": st.sampled_from(CAPABILITY_NAMES).map(
        lambda n: (base_event("capability", capability=CAPABILITY_NAMES.index(n), capname=n), {})),
    "network": st.builds(
        _network, st.sampled_from(["inet", "inet6", "netlink", "packet", "bluetooth", "alg", "vsock", "key"]),
        st.sampled_from(["stream", "dgram", "raw", "seqpacket", "packet"]),
        st.one_of(st.none(), mask(["create", "connect", "send", "receive", "bind", "listen"])), hostile),
    "unix": st.builds(_unix, hostile, st.one_of(st.none(), hostile), st.sampled_from(["stream", "dgram", "seqpacket"]),
                      mask(["connect", "send", "receive", "bind", "listen", "accept", "create"])),
    "signal": st.builds(lambda sig, peer, w: (base_event("signal", signal=sig, peer=peer,
                                                         mask={"requested": w, "denied": w}), {"peer": peer}),
                        st.sampled_from(SIGNALS), hostile, st.sampled_from(["send", "receive"])),
    "ptrace": st.builds(lambda peer, w: (base_event("ptrace", peer=peer, mask={"requested": w, "denied": w}),
                                         {"peer": peer}),
                        hostile, st.sampled_from(["read", "trace", "readby", "tracedby"])),
    "dbus": st.one_of(
        st.builds(_dbus, st.one_of(st.sampled_from(["system", "session"]), hostile), hostile, hostile, hostile,
                  hostile, st.sampled_from(["send", "receive"])),
        st.builds(_dbus_bind, st.one_of(st.sampled_from(["system", "session"]), hostile), hostile)),
    "mount": st.builds(_mount, st.just("mount"), hostile, hostile, hostile),
    "umount": st.builds(_mount, st.just("umount"), hostile, hostile, hostile),
    "remount": st.builds(_mount, st.just("remount"), hostile, hostile, hostile),
    "pivot_root": st.builds(lambda new, old: (base_event("pivot_root", path="/" + new, srcname="/" + old),
                                              {"newroot": "/" + new, "oldroot": "/" + old}), hostile, hostile),
    "change_profile": st.builds(lambda t: (base_event("change_profile", target=t), {"target": t}), hostile),
    "userns": st.just((base_event("userns", mask={"requested": "create", "denied": "create"}), {})),
    "io_uring": st.one_of(
        st.just((base_event("io_uring", mask={"requested": "sqpoll", "denied": "sqpoll"}), {})),
        st.builds(lambda t: (base_event("io_uring", target=t, mask={"requested": "override_creds",
                                                                     "denied": "override_creds"}), {"label": t}),
                  hostile)),
    "mqueue": st.builds(lambda n, w, c: (base_event("mqueue", path="/" + n, mask={"requested": w, "denied": w},
                                                    **{"class": c}), {"name": "/" + n}),
                        hostile, st.sampled_from(["read", "write", "create", "open", "delete", "getattr"]),
                        st.sampled_from(["posix_mqueue", "sysv_mqueue"])),
}


# ---- kinds built directly (no event produces them): link, include, variable ------------------------

def _escape(name):
    """A literal as an AppArmor pattern, per apparmor.d(5): backslash before every pattern special."""
    return "".join("\\" + c if c in "*?[]{}\\" else c for c in name)


DIRECT = {
    "link": st.builds(lambda a, b, subset: (LinkRule(_escape("/" + a), _escape("/" + b), subset=subset),
                                            {"path": collapse("/" + a), "target": collapse("/" + b)}),
                      hostile, hostile, st.booleans()),
    "variable": st.builds(lambda vals: (VariableRule("armada_fuzz", [_escape("/" + v) for v in vals]), {}),
                          st.lists(hostile, min_size=1, max_size=3)),
}
# include targets: a plain name is accepted, anything else refused with RuleParseError. The expected
# decision is written here from include.py's documented rule (letters, digits, _ . / + -, no '..').
_PLAIN_INCLUDE = re.compile(r"^[A-Za-z0-9_./+-]+$")

ALL_KINDS = sorted(set(STRATEGIES) | set(DIRECT) | {"include", "profile_name"} | {k + "_log" for k in (
    "file", "exec", "signal", "ptrace", "unix", "mount", "pivot_root", "change_profile")})


def test_fuzz_unrenderable_pattern_is_refused_when_the_rule_is_built():
    """A lone trailing backslash cannot be written in any rule: FileRule refuses it at construction
    (RuleParseError, a clear error), not later in render()."""
    for kwargs in ({"path": "/a\\", "perms": frozenset("r")},
                   {"path": "/a", "perms": frozenset("mr"), "exec_mode": "Px", "target": "x\\"}):
        with pytest.raises(RuleParseError):
            FileRule(**kwargs)


def test_every_registry_kind_is_fuzzed():
    """A kind added to the registry without a fuzz strategy fails here instead of going unfuzzed."""
    registry = {(cls.__name__, cls.kind) for cls in RULE_CLASSES}
    covered_classes = {"FileRule", "LinkRule", "IncludeRule", "VariableRule", "CapabilityRule", "NetworkRule",
                       "UnixRule", "SignalRule", "PtraceRule", "DbusRule", "MountRule", "UmountRule", "RemountRule",
                       "PivotRootRule", "ChangeProfileRule", "UsernsRule", "IoUringRule", "MqueueRule"}
    assert {name for name, _kind in registry} <= covered_classes, registry


def _check_rule(kind, rule, expect, queue, placement="body"):
    """The per-case checks; returns the rendered line."""
    # The newest ABI the engine writes carries every field: it must parse back to exactly this rule.
    full = rule.render("4.0")
    back = parse_rule(full)
    assert type(back) is type(rule) and back == rule, "parse-back differs:\n%r\n%r\n%s" % (rule, back, full)
    abi = "3.0"
    try:
        text = rule.render(abi)
    except AbiError:
        abi, text = "4.0", full
    for line in (full, text):
        assert len(line.splitlines()) == 1 and line.isprintable(), "rendered rule is not one printable line: %r" % line
        assert not re.search(r"[\u2028\u2029\x85]", line)
    if text != full:
        # ABI 3.0 cannot say everything (network/unix accesses): the documented downgrade of an allow
        # rule to the family/type form. It must still be a fixed point of parse + render.
        assert not rule.deny, "a deny rule was silently widened for ABI 3.0: %s -> %s" % (full, text)
        assert parse_rule(text).render(abi) == text, text
        bump("render", kind, "abi3_downgraded")
    for attr, literal in expect.items():
        got = getattr(rule, attr)
        assert got is not None and literal_of(got) == literal, (kind, attr, got, literal, text)
    if abi == "3.0":
        queue.append((placement, text))
        bump("render", kind, "compiled")
    else:
        bump("render", kind, "parse_back_only")
        REPORT["render"][kind]["note"] = "ABI 4.0 rule: the 3.0.8 parser cannot compile it; parse-back only"
    return text


# Several distinct hostile link rules in one profile can make apparmor_parser 3.0.8's link-pair DFA explode
# (measured: 8 generated link rules 0.08 s, adding a 9th: no result in 120 s; each alone 0.01-0.02 s). Link
# rules come only from answers and profile text, never from an event, so each is compiled on its own.
BATCH = {"link": 1}


def _finish(kind, queue):
    bad = compile_batches(queue, batch=BATCH.get(kind, 400))
    assert not bad, "apparmor_parser rejects %d of %d %s rules, first: %r\n%s" % (
        len(bad), len(queue), kind, bad[0][0], bad[0][1][:2000])


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_fuzz_render_from_events(kind):
    queue = []

    @SETTINGS
    @given(STRATEGIES[kind])
    def one(case):
        event, expect = case
        bump("render", kind, "tried")
        rule = rule_from_event(event)
        assert rule is not None, "no rule for a well-formed %s event: %r" % (kind, event)
        _check_rule(kind, rule, expect, queue)

    one()
    _finish(kind, queue)


@pytest.mark.parametrize("kind", sorted(DIRECT))
def test_fuzz_render_direct(kind):
    queue = []

    @SETTINGS
    @given(DIRECT[kind])
    def one(case):
        rule, expect = case
        bump("render", kind, "tried")
        _check_rule(kind, rule, expect, queue, placement="top" if kind == "variable" else "body")

    one()
    _finish(kind, queue)


def _include_case(target, queue):
    bump("render", "include", "tried")
    # and not the include directory itself ("." or "/": the parser would include all of /etc/apparmor.d)
    expected_ok = (bool(_PLAIN_INCLUDE.match(target)) and ".." not in target.split("/")
                   and any(part not in ("", ".") for part in target.split("/")))
    try:
        rule = IncludeRule(target, magic=True, if_exists=True)
    except RuleParseError:
        assert not expected_ok, "plain include target refused: %r" % target
        bump("render", "include", "refused")
        return
    assert expected_ok, "hostile include target accepted: %r" % target
    text = rule.render()
    assert len(text.splitlines()) == 1 and parse_rule(text) == rule
    queue.append(("body", text))  # "include if exists" of a missing file compiles to nothing
    bump("render", "include", "compiled")


def test_fuzz_render_include():
    queue = []

    @SETTINGS
    @given(st.one_of(hostile, st.from_regex(r"[A-Za-z0-9_./+-]{1,20}", fullmatch=True)))
    def one(target):
        _include_case(target, queue)

    one()
    _finish("include", queue)


# ---- profile names: a child profile with a hostile name, added through profile_model ---------------

BASE_PROFILE = "abi <abi/3.0>,\nprofile armada_fuzz_parent {\n  /etc/hostname r,\n}\n"


def test_fuzz_render_profile_names():
    texts = []

    @SETTINGS
    @given(hostile)
    def one(name):
        bump("render", "profile_name", "tried")
        pf = profile_model.ProfileFile.parse(BASE_PROFILE)
        try:
            pf.add_rules("armada_fuzz_parent//" + name, [FileRule("/tmp/armada_fuzz", frozenset("r"))], create=True)
        except (profile_model.ProfileError, RuleParseError) as exc:
            # refused by the documented hat-name policy (check_hat_name): empty, NUL, leading ':' or
            # '&', '//' inside; anything else must be written
            assert name[:1] in (":", "&") or "//" in name or "\x00" in name, (name, exc)
            bump("render", "profile_name", "refused")
            return
        text = pf.render()
        again = profile_model.ProfileFile.parse(text)
        child = again.find("armada_fuzz_parent//" + name)
        assert child is not None, "child %r not found again in:\n%s" % (name, text)
        texts.append(text)
        bump("render", "profile_name", "compiled")

    one()
    bad = []
    for start in range(0, len(texts), 200):  # one file holds one parent profile: join as separate files
        chunk = texts[start:start + 200]
        joined = "abi <abi/3.0>,\n" + "\n".join(t.replace("abi <abi/3.0>,\n", "").replace(
            "profile armada_fuzz_parent {", "profile armada_fuzz_parent_%d {" % (start + i), 1)
            for i, t in enumerate(chunk))
        ok, err = compile_text(joined)
        if not ok:
            for t in chunk:
                ok1, err1 = compile_text(t)
                if not ok1:
                    bad.append((t, err1))
    assert not bad, "apparmor_parser rejects %d profiles with hostile child names, first:\n%s\n%s" % (
        len(bad), bad[0][0], bad[0][1][:1500])


# ---- through the log parser: names hex-encoded by the kernel ------------------------------------

def kernel_value(text):
    """How the kernel writes an untrusted string (audit_log_untrustedstring): quoted, unless it holds a
    '"', a byte below 0x21 or above 0x7e - then the whole value is upper-case hex without quotes."""
    data = text.encode("utf-8")
    if any(b == 0x22 or b < 0x21 or b > 0x7E for b in data):
        return data.hex().upper()
    return '"%s"' % text


def record(op, fields, profile="/usr/bin/x", mode="DENIED"):
    return ('type=AVC msg=audit(1700000000.123:42): apparmor="%s" operation="%s" profile=%s %s pid=811 '
            'comm="x"' % (mode, op, kernel_value(profile), fields)).encode("utf-8")


def _log_file(name, prof):
    path = "/" + name
    line = record("open", "name=%s requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0" % kernel_value(path), prof)
    return line, prof, {"path": collapse(path)}, {"path": path}


def _log_exec(name, prof):
    path = "/" + name
    line = record("exec", "name=%s info=\"no new privs\" requested_mask=\"x\" denied_mask=\"x\" fsuid=0 ouid=0"
                  % kernel_value(path), prof)
    return line, prof, {"path": collapse(path)}, {"path": path}


def _log_signal(peer, prof):
    line = record("signal", 'requested_mask="send" denied_mask="send" signal=term peer=%s' % kernel_value(peer), prof)
    return line, prof, {"peer": peer}, {"peer": peer}


def _log_ptrace(peer, prof):
    line = record("ptrace", 'requested_mask="read" denied_mask="read" peer=%s' % kernel_value(peer), prof)
    return line, prof, {"peer": peer}, {"peer": peer}


def _log_unix(addr, prof):
    line = record("connect", 'family="unix" sock_type="stream" protocol=0 requested_mask="connect" '
                  'denied_mask="connect" addr=%s' % kernel_value("@" + addr), prof)
    return line, prof, {"addr": "@" + addr}, {"addr": "@" + addr}


def _log_mount(point, src, prof):
    line = record("mount", 'info="failed mntpnt match" error=-13 name=%s srcname=%s flags="rw"'
                  % (kernel_value("/" + point), kernel_value("/" + src)), prof)
    return line, prof, {"mountpoint": "/" + point, "source": "/" + src}, {"path": "/" + point, "srcname": "/" + src}


def _log_pivot(new, prof):
    line = record("pivotroot", 'name=%s srcname="/old"' % kernel_value("/" + new), prof)
    return line, prof, {"newroot": "/" + new}, {"path": "/" + new}


def _log_change_profile(target, prof):
    line = record("change_profile", 'name=%s' % kernel_value(target), prof)
    return line, prof, {"target": target}, {}


hostile_profile = st.one_of(st.just("/usr/bin/x"), loggable)
LOG_STRATEGIES = {
    "file_log": st.builds(_log_file, loggable, hostile_profile),
    "exec_log": st.builds(_log_exec, loggable, hostile_profile),
    "signal_log": st.builds(_log_signal, loggable, hostile_profile),
    "ptrace_log": st.builds(_log_ptrace, loggable, hostile_profile),
    "unix_log": st.builds(_log_unix, loggable, hostile_profile),
    "mount_log": st.builds(_log_mount, loggable, loggable, hostile_profile),
    "pivot_root_log": st.builds(_log_pivot, loggable, hostile_profile),
    "change_profile_log": st.builds(_log_change_profile, loggable, hostile_profile),
}


@pytest.mark.parametrize("kind", sorted(LOG_STRATEGIES))
def test_fuzz_render_from_hex_log_records(kind):
    queue = []

    @SETTINGS
    @given(LOG_STRATEGIES[kind])
    def one(case):
        line, prof, expect_rule, expect_event = case
        bump("render", kind, "tried")
        parsed = logparse.parse_line(line)
        event = parsed["event"]
        assert event is not None, "record not read (%s): %r" % (parsed.get("skip"), line)
        assert event["profile"] == prof
        for key, value in expect_event.items():
            assert event.get(key) == value, (key, event.get(key), value)
        rule = rule_from_event(event)
        assert rule is not None, "no rule for %r" % event
        _check_rule(kind, rule, expect_rule, queue)

    one()
    _finish(kind, queue)


def test_fuzz_render_report_lists_every_kind():
    """Runs last in this file: every kind was tried at least once (the counts are printed at the end)."""
    tried = {k for k, v in REPORT["render"].items() if v.get("tried")}
    missing = set(ALL_KINDS) - tried
    if len(tried) > 1:  # the whole file ran (not a single test selected with -k)
        assert not missing, "kinds never fuzzed in this run: %s" % sorted(missing)
