"""The event model: identity, ids, folding (docs/events.md)."""
import hashlib
import json

from ansible_collections.armada.apparmor.plugins.module_utils import events as ev_mod


def file_event(**kw):
    ev = {"kind": "file", "host": "h1", "profile": "/usr/bin/foo", "path": "/etc/shadow", "owner": False,
          "mask": {"requested": "r", "denied": "r"}, "operations": ["open"], "modes": ["DENIED"], "count": 1,
          "first_seen": 10.0, "last_seen": 10.0, "pids": [5], "comms": ["foo"]}
    ev.update(kw)
    return ev_mod.finish(ev)


def test_id_is_sha1_of_the_identity_json():
    ev = file_event()
    ident = ["file", "h1", "/usr/bin/foo", "/etc/shadow", "r", False, None]
    want = hashlib.sha1(json.dumps(ident, separators=(",", ":"), sort_keys=True).encode()).hexdigest()[:16]
    assert ev["id"] == want


def test_id_ignores_counters_times_pids_operations_modes_and_denied():
    a = file_event()
    b = file_event(count=9, first_seen=1.0, last_seen=99.0, pids=[1, 2], comms=["x"], operations=["getattr"],
                   modes=["ALLOWED"], mask={"requested": "r", "denied": ""}, info="whatever")
    assert a["id"] == b["id"]


def test_id_changes_with_each_identity_field():
    base = file_event()["id"]
    for change in ({"host": "h2"}, {"profile": "/usr/bin/foo//null-/x"}, {"path": "/etc/passwd"},
                   {"owner": True}, {"mask": {"requested": "w", "denied": "w"}}, {"target": "/t"},
                   {"kind": "exec"}):
        assert file_event(**change)["id"] != base, change


def test_identity_per_kind_uses_the_documented_fields():
    net = {"kind": "network", "host": None, "profile": "/p", "family": "inet", "sock_type": "stream", "protocol": 6,
           "mask": {"requested": "send", "denied": "send"}, "laddr": "10.0.0.1", "lport": 40000}
    assert ev_mod.identity(net) == ("network", None, "/p", "inet", "stream", 6, "send")
    other_port = dict(net, lport=40001, faddr="10.0.0.2")
    assert ev_mod.identity(other_port) == ev_mod.identity(net)  # ephemeral ports do not split events
    cap = {"kind": "capability", "host": None, "profile": "/p", "capability": 12, "capname": "net_admin"}
    assert ev_mod.identity(cap) == ("capability", None, "/p", "net_admin")
    dbus = {"kind": "dbus", "host": None, "profile": "/p", "bus": "system", "dbus_path": "/o", "interface": "i",
            "member": "m", "mask": {"requested": "send", "denied": ""}, "peer": "unconfined", "dbus_name": "n"}
    assert ev_mod.identity(dbus) == ("dbus", None, "/p", "system", "/o", "i", "m", "send", "unconfined", "n")


def test_merge_unions_and_bounds():
    a = file_event(pids=list(range(10)), comms=["a"], first_seen=5.0, last_seen=6.0)
    b = file_event(pids=list(range(5, 30)), comms=["b"], first_seen=1.0, last_seen=3.0, operations=["getattr"],
                   modes=["ALLOWED"], mask={"requested": "r", "denied": "rw"})
    ev_mod.merge_into(a, b)
    assert a["count"] == 2
    assert a["operations"] == ["getattr", "open"] and a["modes"] == ["ALLOWED", "DENIED"]
    assert a["first_seen"] == 1.0 and a["last_seen"] == 6.0
    assert len(a["pids"]) == ev_mod.MAX_PIDS and a["pids"] == sorted(a["pids"])
    assert a["comms"] == ["a", "b"]
    assert a["mask"] == {"requested": "r", "denied": "rw"}


def test_denied_words_union_for_word_masks():
    a = {"kind": "unix", "mask": {"requested": "send receive", "denied": "send"}, "count": 1}
    b = {"kind": "unix", "mask": {"requested": "send receive", "denied": "receive send"}, "count": 1}
    ev_mod.merge_into(a, b)
    assert a["mask"]["denied"] == "send receive"


def test_merge_keeps_null_times():
    a = file_event(first_seen=None, last_seen=None)
    ev_mod.merge_into(a, file_event(first_seen=7.0, last_seen=8.0))
    assert (a["first_seen"], a["last_seen"]) == (7.0, 8.0)


def test_aggregator_folds_and_caps():
    agg = ev_mod.Aggregator(max_events=2)
    assert agg.add(file_event())
    assert agg.add(file_event(path="/b"))
    assert agg.add(file_event(count=3))  # known identity still folds
    assert not agg.add(file_event(path="/c", count=4))
    assert agg.max_reached and agg.dropped == 4
    res = agg.result()
    assert [e["path"] for e in res] == ["/b", "/etc/shadow"]
    assert [e["count"] for e in res] == [1, 4]
