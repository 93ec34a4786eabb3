"""Threat: a compromised host sends crafted events to get rules learned (docs/security.md).

k-of-n consensus (``to_rules(min_hosts=k)``) is the bound: an allow is applied only to events at least k
hosts reported. These tests check that bound with crafted input, through the real merge_events and
to_rules engine.
"""
from ansible_collections.armada.apparmor.plugins.module_utils.answers import to_rules
from ansible_collections.armada.apparmor.plugins.module_utils.fleet import merge_events

P = "/usr/sbin/nginx"


def ev(path, host=None):
    e = {"id": "x", "kind": "file", "profile": P, "parent": P, "child": None, "operations": ["open"],
         "modes": ["DENIED"], "count": 1, "first_seen": 1.0, "last_seen": 1.0, "pids": [1], "comms": ["nginx"],
         "path": path, "mask": {"requested": "r", "denied": "r"}}
    if host is not None:
        e["host"] = host
    return e


ALLOW_ALL = [{"profile": P, "match": {"kind": "file"}, "answer": "allow"}]


def allowed_paths(result):
    out = set()
    for prof in result["profiles"].values():
        for rule in prof.get("rules") or []:
            out.add(rule.get("text") if isinstance(rule, dict) else str(rule))
    return out


def pending_paths(result):
    return {e.get("path") for prof in result["profiles"].values() for e in prof.get("pending") or []}


def test_one_host_alone_cannot_get_an_allow_through_min_hosts():
    fleet = {"web1": [ev("/srv/shared")], "web2": [ev("/srv/shared")], "evil": [ev("/etc/shadow")]}
    res = to_rules(merge_events(fleet), ALLOW_ALL, min_hosts=2)
    assert "/etc/shadow" in pending_paths(res)
    assert not any("/etc/shadow" in t for t in allowed_paths(res))
    assert any("/srv/shared" in t for t in allowed_paths(res))


def test_one_host_claiming_to_be_many_cannot_get_an_allow_through_min_hosts():
    crafted = [ev("/etc/shadow", host=h) for h in ("web1", "web2", "web3")]
    fleet = {"web1": [ev("/srv/shared")], "web2": [ev("/srv/shared")], "evil": crafted}
    res = to_rules(merge_events(fleet), ALLOW_ALL, min_hosts=2)
    assert not any("/etc/shadow" in t for t in allowed_paths(res))


def test_a_crafted_hosts_field_is_not_counted_either():
    crafted = ev("/etc/shadow")
    crafted["hosts"] = {"web1": 1, "web2": 1, "web3": 1}
    fleet = {"web1": [ev("/srv/shared")], "web2": [ev("/srv/shared")], "evil": [crafted]}
    res = to_rules(merge_events(fleet), ALLOW_ALL, min_hosts=2)
    assert "/etc/shadow" in pending_paths(res)
    assert not any("/etc/shadow" in t for t in allowed_paths(res))


def test_claimed_origins_stay_as_information_and_consensus_names_the_reporting_host():
    crafted = [ev("/etc/shadow", host=h) for h in ("web1", "web2", "web3")]
    merged = merge_events({"evil": crafted, "web1": [ev("/srv/shared", host="web1")]})
    shadow = [e for e in merged if e["path"] == "/etc/shadow"][0]
    # the reporting inventory host counts (three copies from it); what the events claimed is kept apart
    assert shadow["hosts"] == {"evil": 3}
    assert shadow["origins"] == {"web1": 1, "web2": 1, "web3": 1}
    # an event whose host field is the reporting host itself carries no origins (nothing to tell)
    shared = [e for e in merged if e["path"] == "/srv/shared"][0]
    assert shared["hosts"] == {"web1": 1} and "origins" not in shared
    res = to_rules(merged, ALLOW_ALL, min_hosts=2)
    pend = [e for e in res["profiles"][P]["pending"] if e["path"] == "/etc/shadow"][0]
    assert pend["hosts"] == {"evil": 3} and "seen by 1 of the 2 host(s)" in pend["reason"]
    # merging the merged list again (controller-built list: its hosts are trusted) keeps both
    again = [e for e in merge_events(merged) if e["path"] == "/etc/shadow"][0]
    assert again["hosts"] == {"evil": 3} and again["origins"] == shadow["origins"]


def test_an_allow_still_goes_through_when_k_inventory_hosts_report_it():
    fleet = {"web1": [ev("/etc/shadow", host="node-a")], "web2": [ev("/etc/shadow", host="node-a")]}
    res = to_rules(merge_events(fleet), ALLOW_ALL, min_hosts=2)
    assert any("/etc/shadow" in t for t in allowed_paths(res))
