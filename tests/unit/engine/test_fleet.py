"""Fleet events: merge_events folds the events of many hosts (docs/answers.md, Consensus; docs/events.md)."""
import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import fleet


def host_event(host, path="/etc/x", count=1, **kw):
    e = {"kind": "file", "profile": "/usr/sbin/nginx", "parent": "/usr/sbin/nginx", "child": None, "host": host,
         "path": path, "mask": {"requested": "r", "denied": "r"}, "owner": False, "count": count,
         "first_seen": kw.pop("first_seen", 10.0), "last_seen": kw.pop("last_seen", 20.0), "pids": [1],
         "comms": ["nginx"], "operations": ["open"], "modes": ["DENIED"], "id": str(host) + path}
    e.update(kw)
    return e


def test_merge_events_folds_across_hosts_with_per_host_counts():
    data = [[host_event("a", count=2), host_event("a", path="/etc/y")],
            [host_event("b", count=5, first_seen=1.0, last_seen=99.0, modes=["ALLOWED"])]]
    merged = fleet.merge_events(data)
    assert len(merged) == 2
    x = [m for m in merged if m["path"] == "/etc/x"][0]
    assert x["hosts"] == {"a": 2, "b": 5}
    assert x["count"] == 7
    assert (x["first_seen"], x["last_seen"]) == (1.0, 99.0)
    assert x["modes"] == ["ALLOWED", "DENIED"]
    assert "host" not in x
    # fleet id: independent of which host saw it first
    again = fleet.merge_events([data[1], data[0]])
    assert [m["id"] for m in again] == [m["id"] for m in merged]


def test_merge_events_hostvars_shape_and_var_lookup():
    hostvars = {"a": {"denials": {"events": [host_event(None)]}, "ansible_host": "1.2.3.4"},
                "b": {"denials": {"events": [host_event(None)]}},
                "c": {"unrelated": 1}}
    merged = fleet.merge_events(hostvars, var="denials")
    assert len(merged) == 1 and merged[0]["hosts"] == {"a": 1, "b": 1}
    direct = fleet.merge_events({"a": [host_event(None)], "b": {"events": [host_event(None)]}})
    assert direct[0]["hosts"] == {"a": 1, "b": 1}


def test_merge_events_keeps_node_host_of_remote_aggregated_logs_as_information_only():
    # node= is written by whoever writes the log: consensus counts the inventory host that reported
    # the events (the log server, once), the node names are kept in origins (docs/answers.md, Consensus)
    merged = fleet.merge_events({"logserver": [host_event("web7"), host_event("web8")]})
    assert merged[0]["hosts"] == {"logserver": 2} and merged[0]["count"] == 2
    assert merged[0]["origins"] == {"web7": 1, "web8": 1}


def test_merge_is_associative_over_already_merged_events():
    part1 = fleet.merge_events([[host_event("a")], [host_event("b")]])
    part2 = fleet.merge_events([[host_event("c", count=3)]])
    total = fleet.merge_events([part1, part2])
    assert total[0]["hosts"] == {"a": 1, "b": 1, "c": 3} and total[0]["count"] == 5


def test_merge_does_not_mutate_its_input():
    e = host_event("a")
    before = repr(e)
    fleet.merge_events([[e], [host_event("b")]])
    assert repr(e) == before


@pytest.mark.parametrize("bad", ["text", 3, [["not an event"]], {"a": 5}])
def test_merge_events_rejects_garbage_with_a_clear_error(bad):
    with pytest.raises(ValueError) as info:
        fleet.merge_events(bad)
    assert "merge_events" in str(info.value)
