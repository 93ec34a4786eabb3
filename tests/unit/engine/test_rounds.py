"""rounds.py: review rounds combine in pass order, conflicts name both rounds, settled events are dropped."""
import datetime

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import answers as engine
from ansible_collections.armada.apparmor.plugins.module_utils import events as events_model
from ansible_collections.armada.apparmor.plugins.module_utils import fleet, rounds

P = "/usr/bin/agent"


def ans(path, answer="allow", **extra):
    return dict({"profile": P, "match": {"kind": "file", "path": path, "mask": "r"}, "answer": answer}, **extra)


def host_ev(host, path, profile=P):
    ev = {"kind": "file", "profile": profile, "path": path, "owner": False, "host": host, "count": 1,
          "mask": {"requested": "r", "denied": ""}, "operations": ["open"], "modes": ["ALLOWED"]}
    ev["id"] = events_model.event_id(events_model.identity(ev))
    return ev


def test_names_carry_the_pass_id():
    pid = rounds.pass_id(datetime.datetime(2026, 12, 6, 14, 5, 12, tzinfo=datetime.timezone.utc))
    assert pid == "20261206T140512Z"
    assert rounds.round_var("apparmor_answers_pending", pid) == "apparmor_answers_pending_20261206T140512Z"
    assert rounds.round_file("/w/apparmor-pending.yml", pid) == "/w/apparmor-pending-20261206T140512Z.yml"
    assert rounds.round_file("/w/pending", pid) == "/w/pending-20261206T140512Z"
    for bad in ("x", "2026-12-06", "../x", "20261206T140512Z\n"):
        with pytest.raises(rounds.RoundsError):
            rounds.round_var("apparmor_answers_pending", bad)
    with pytest.raises(rounds.RoundsError, match="starting with apparmor_answers"):
        rounds.round_var("my_answers", pid)


def test_rounds_combine_in_name_order_and_pending_never_conflicts():
    got = rounds.combine({
        "apparmor_answers_pending_20261206T110000Z": [ans("/b", "deny"), ans("/c")],
        "apparmor_answers": [ans("/x")],
        "apparmor_answers_pending_20261206T100000Z": [ans("/a"), ans("/b", "pending")],
        "apparmor_answers_empty": None,
    })
    assert [(a["match"]["path"], a["answer"]) for a in got] == [
        ("/x", "allow"), ("/a", "allow"), ("/b", "pending"), ("/b", "deny"), ("/c", "allow")]


def test_a_question_answered_differently_in_two_rounds_names_both():
    with pytest.raises(rounds.RoundsError) as err:
        rounds.combine({"apparmor_answers_pending_20261206T100000Z": [ans("/a", glob="/*")],
                        "apparmor_answers_pending_20261206T110000Z": [dict(ans("/a"), counts={"h": 2})]})
    msg = str(err.value)
    assert "apparmor_answers_pending_20261206T100000Z and apparmor_answers_pending_20261206T110000Z" in msg
    assert "path=/a" in msg and '"glob": "/*"' in msg


def test_the_same_decision_twice_is_kept_once_and_other_variables_keep_precedence():
    same = rounds.combine({"apparmor_answers_pending_1": [ans("/a", comment="r1", hosts=["h1"])],
                           "apparmor_answers_pending_2": [ans("/a", comment="r2", hosts=["h1", "h2"])]})
    assert len(same) == 1 and same[0]["comment"] == "r1"
    # a hand-written variable is not a round: its answers meet round answers by precedence (deny wins)
    mixed = rounds.combine({"apparmor_answers": [ans("/a", "deny")], "apparmor_answers_pending_1": [ans("/a")]})
    assert len(mixed) == 2


def test_a_variable_that_is_not_a_list_is_refused_by_name():
    with pytest.raises(rounds.RoundsError, match="apparmor_answers_x must be a list"):
        rounds.combine({"apparmor_answers_x": {"profile": P}})


def test_settled_events_are_dropped_open_ones_and_other_profiles_kept():
    kept = [host_ev("h1", "/a"), host_ev("h1", "/b"), host_ev("h1", "/c"), host_ev("h1", "/d", profile="/other"),
            host_ev("h1", "/e", profile=P + "//null-/usr/bin/tar")]
    merged = fleet.merge_events({"h1": kept, "h2": [host_ev("h2", "/a")]})
    result = engine.to_rules(merged, [ans("/a"), ans("/b", "ignore"), ans("/d", profile="/other"),
                                     dict(ans("/e"), profile=P)])
    left = rounds.unsettled(kept, result, [P])  # /other is not written on this host
    assert [e["path"] for e in left] == ["/c", "/d"]
    # nothing is settled by a result that answered nothing
    assert rounds.unsettled(kept, engine.to_rules(merged, []), [P, "/other"]) == kept
