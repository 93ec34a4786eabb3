"""Cursor store: atomic files, tokens that check themselves, compare-and-swap commits."""
import json
import os

import pytest

from ansible_collections.armada.apparmor.plugins.module_utils import cursor as cur

POS_A = {"file:/var/log/audit/audit.log": {"kind": "file", "files": [{"ino": 1, "offset": 10}]}}
POS_B = {"file:/var/log/audit/audit.log": {"kind": "file", "files": [{"ino": 1, "offset": 99}]}}


def test_names():
    assert cur.check_name("nightly-run_1.2@web") == "nightly-run_1.2@web"
    for bad in ["", ".hidden", "-x", "a/b", "../x", "a b", "x" * 129, None]:
        with pytest.raises(cur.CursorError):
            cur.check_name(bad)


def test_missing_cursor_is_empty_and_save_is_atomic(tmp_path):
    store = cur.CursorStore(str(tmp_path / "cursors"))
    assert store.load("c1") == {} and not store.exists("c1")
    store.save("c1", POS_A)
    assert store.load("c1") == POS_A
    assert sorted(os.listdir(tmp_path / "cursors")) == ["c1.json"]  # no temp file left behind
    doc = json.loads((tmp_path / "cursors" / "c1.json").read_text())
    assert doc["version"] == 1 and doc["name"] == "c1" and doc["sources"] == POS_A
    assert oct(os.stat(tmp_path / "cursors").st_mode & 0o777) == "0o700"


def test_corrupt_cursor_file_is_an_error_and_kept(tmp_path):
    store = cur.CursorStore(str(tmp_path))
    (tmp_path / "c1.json").write_text('{"version": 1, "sources": ')
    with pytest.raises(cur.CursorError, match="corrupt"):
        store.load("c1")
    (tmp_path / "c2.json").write_text('{"version": 7, "sources": {}}')
    with pytest.raises(cur.CursorError, match="unknown format"):
        store.load("c2")
    assert (tmp_path / "c1.json").read_text() == '{"version": 1, "sources": '


def test_token_round_trip_and_damage():
    tok = cur.make_token("c1", {}, POS_A)
    payload = cur.parse_token(tok)
    assert payload["name"] == "c1" and payload["sources"] == POS_A and payload["base"] == cur.digest({})
    # flip one character of the body: refused, whatever the character
    body_at = len(tok) - 5
    bad = tok[:body_at] + ("A" if tok[body_at] != "A" else "B") + tok[body_at + 1:]
    with pytest.raises(cur.CursorError, match="damaged"):
        cur.parse_token(bad)
    with pytest.raises(cur.CursorError):
        cur.parse_token(tok[:-10])
    with pytest.raises(cur.CursorError, match="not a cursor token"):
        cur.parse_token("hello")


def test_commit_compare_and_swap(tmp_path):
    store = cur.CursorStore(str(tmp_path))
    t1 = cur.make_token("c1", store.load("c1"), POS_A)
    res = store.commit("c1", t1)
    assert res["changed"] is True and store.load("c1") == POS_A
    # committing the same token again changes nothing
    assert store.commit("c1", t1)["changed"] is False
    # a token read from the old (empty) position after someone else committed: refused
    stale = cur.make_token("c1", {}, POS_B)
    with pytest.raises(cur.CursorError, match="moved since"):
        store.commit("c1", stale)
    assert store.load("c1") == POS_A
    assert store.commit("c1", stale, force=True)["changed"] is True
    assert store.load("c1") == POS_B


def test_commit_keeps_other_sources_and_checks_name(tmp_path):
    store = cur.CursorStore(str(tmp_path))
    other = {"journal:all": {"kind": "journal", "cursor": "s=1"}}
    store.save("c1", other)
    tok = cur.make_token("c1", other, POS_A)
    store.commit("c1", tok)
    merged = dict(other)
    merged.update(POS_A)
    assert store.load("c1") == merged
    with pytest.raises(cur.CursorError, match="issued for cursor"):
        store.commit("c2", tok)


def test_commit_in_check_mode_writes_nothing(tmp_path):
    store = cur.CursorStore(str(tmp_path / "none"))
    tok = cur.make_token("c1", {}, POS_A)
    res = store.commit("c1", tok, check_mode=True)
    assert res["changed"] is True
    assert not (tmp_path / "none").exists()
