"""What a rule kind is, declared once (rules/<kind>.py, base.EventKind): the tables the reader, the
answers engine and the suggestions use are derived from those declarations and agree with each other.

The expectations are written from docs/events.md (identity, fields) and docs/answers.md (match keys),
not computed by the code under test.
"""
import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import answers, events, suggest
from ansible_collections.armada.apparmor.plugins.module_utils import rules as registry
from ansible_collections.armada.apparmor.plugins.module_utils.rules import exec as exec_kind

# docs/events.md, "Kinds": every kind the reader can produce
DOCUMENTED_KINDS = {"file", "exec", "capability", "network", "unix", "signal", "ptrace", "dbus", "mount", "umount",
                    "remount", "pivot_root", "change_profile", "change_hat", "userns", "io_uring", "mqueue",
                    "status", "other"}


def _declarations():
    out = [ek for cls in registry.RULE_CLASSES for ek in cls.events]
    return out + list(registry.RECORD_ONLY_KINDS)


def test_every_kind_is_declared_exactly_once():
    names = [ek.name for ek in _declarations()]
    assert sorted(names) == sorted(set(names)), "a kind is declared by two classes"
    assert set(names) == DOCUMENTED_KINDS


def test_derived_tables_list_the_same_kinds_in_the_same_order():
    order = tuple(ek.name for ek in _declarations())
    assert order == events.KINDS
    assert order == answers.EVENT_KINDS
    assert tuple(suggest.MATCH_FIELDS_BY_KIND) == order  # status too: its questions match on kind alone


@pytest.mark.parametrize("ek", _declarations(), ids=lambda ek: ek.name)
def test_each_kind_tables_come_from_its_declaration(ek):
    assert events._IDENTITY[ek.name] == ek.identity
    assert suggest.MATCH_FIELDS_BY_KIND[ek.name] == ek.match
    assert (ek.name in events.LETTER_MASK_KINDS) is ek.file_rule
    assert (ek.name in registry.FILE_RULE_KINDS) is ek.file_rule


@pytest.mark.parametrize("ek", _declarations(), ids=lambda ek: ek.name)
def test_what_a_question_writes_an_answer_can_match(ek):
    # a pending question pasted back into inventory must validate: every field it writes, every identity
    # field and every field the reader sets on such an event is a match key answers accept
    accepted = set(answers.MATCH_FIELDS)
    assert set(ek.match) <= accepted
    assert set(ek.identity) <= accepted
    assert set(ek.fields) <= accepted
    # identity fields are fields the event can carry; change_profile, change_hat, status and other keep a ``path``
    # the reader never sets (always None) because removing it would change every such event's id (ids are
    # stored in answers)
    legacy = {"path"} if ek.name in ("change_profile", "change_hat", "status", "other") else set()
    assert set(ek.identity) - legacy <= set(ek.fields) | set(events.RECORD_FIELDS)


@pytest.mark.parametrize("ek", _declarations(), ids=lambda ek: ek.name)
def test_a_question_never_splits_one_event(ek):
    # events that fold into one (same identity) must be one question: match fields come from the identity
    # (capability questions write the name, capname, which the capability identity uses when logged)
    assert set(ek.match) - {"capname"} <= set(ek.identity)


def test_answer_match_keys_are_record_fields_and_the_kinds_fields():
    kind_fields = set(f for ek in _declarations() for f in ek.fields)
    assert set(answers.MATCH_FIELDS) == set(events.RECORD_FIELDS) | kind_fields
    assert len(answers.MATCH_FIELDS) == len(set(answers.MATCH_FIELDS))


def test_exec_modes_are_one_list():
    # apparmor.d(5): ix px Px cx Cx ux Ux and the fallbacks pix Pix cix Cix pux PUx cux CUx
    documented = ["ix", "px", "Px", "cx", "Cx", "ux", "Ux", "pix", "Pix", "cix", "Cix", "pux", "PUx", "cux", "CUx"]
    assert list(exec_kind.ALLOW_EXEC_MODES) == documented
    for mode in documented:
        assert answers.parse_exec_mode(mode) == (mode, None)
    for bad in ("x", "safe", "pxi", "IX"):  # deny-only x, a change_profile mode, unknown letters
        with pytest.raises(ValueError):
            answers.parse_exec_mode(bad)
    assert not hasattr(answers, "EXEC_MODES") and not hasattr(exec_kind, "EXEC_MODES")


UNIX_TCP = {"kind": "unix", "profile": "/usr/sbin/nginx", "family": "unix", "sock_type": "stream", "protocol": 0,
            "mask": {"requested": "connect", "denied": "connect"}, "addr": "@/run/a", "peer_addr": "@/run/b",
            "hosts": {"web1": 1}, "count": 1, "id": "00000000000000a1", "reason": "no answer matches"}


def _pending(evs):
    result = {"abi": "3.0", "profiles": {"/usr/sbin/nginx": {"rules": [], "deny": [], "ignored": [], "pending": evs,
                                                             "unsupported": [], "children": {}}},
              "conflicts": [], "errors": [], "stats": {}}
    return suggest.pending_list(result)


def test_unix_questions_match_family_and_protocol():
    # docs/decisions.md: unix events fold by family and protocol too (their identity), so a question carries them
    other = dict(UNIX_TCP, protocol=1, id="00000000000000a2")
    items = _pending([UNIX_TCP, other])
    assert len(items) == 2
    assert sorted(i["match"]["protocol"] for i in items) == [0, 1]
    assert all(i["match"]["family"] == "unix" for i in items)
    # pasted back as an allow, the answer validates and decides only its own event
    allow = answers.validate_answers([dict(items[0], answer="allow")])
    own = [e for e in (UNIX_TCP, other) if e["protocol"] == items[0]["match"]["protocol"]][0]
    rest = other if own is UNIX_TCP else UNIX_TCP
    assert answers.decide(allow, own, own["profile"]).answer is not None
    assert answers.decide(allow, rest, rest["profile"]).answer is None


def test_the_reader_sets_path_and_owner_for_the_declaring_kinds():
    from ansible_collections.armada.apparmor.plugins.module_utils import logparse
    # docs/events.md: the record's name= is the event's path for file-like, mount-like, mqueue, userns and
    # io_uring events; owner (fsuid == ouid) is set for file, exec and mqueue events
    documented = {"file", "exec", "mount", "umount", "remount", "pivot_root", "mqueue", "userns", "io_uring"}
    assert documented == logparse._PATH_KINDS
    assert {"file", "exec", "mqueue"} == logparse._OWNER_KINDS
    rec = {"mode": "ALLOWED", "fields": {"operation": "userns_create", "class": "namespace", "profile": "p",
                                         "name": "/usr/bin/x", "requested": "userns_create"}}
    assert logparse.build_event(rec)["path"] == "/usr/bin/x"
