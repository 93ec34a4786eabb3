"""The state module (the roles' learn.json, events.json, convergence.json), through real ansible-playbook.

It writes every file or none (a directory it cannot write keeps the old files byte for byte and no temp file),
reports a change only when the JSON text differs, writes nothing in check mode, shows a diff, honours the mode
and refuses names that are not plain ``.json`` files and a lock held by another run.
"""
import json
import os
import stat
import subprocess

import pytest
from aa_playbook import held_lock, run_tasks

AVC = ('type=AVC msg=audit(1700000000.%03d:%d): apparmor="DENIED" operation="open" class="file" profile="/usr/bin/x" '
       'name="/etc/shadow" pid=811 comm="x" requested_mask="r" denied_mask="r" fsuid=0 ouid=0\n')
EVENTS = [{"id": "e1", "kind": "file", "path": "/srv/a b"}]
RECORD = {"version": 1, "profiles": {"/usr/bin/a": {"passes": 1, "converged": False}}}


def write_task(state_dir, lock_file, events=EVENTS, record=RECORD, **extra):
    return {"armada.apparmor.state": dict({
        "path": state_dir, "lock_file": lock_file,
        "files": [{"name": "events.json", "data": events, "pretty": False},
                  {"name": "convergence.json", "data": record, "mode": "0644"}]}, **extra)}


def read_log(log, cursors):
    return {"armada.apparmor.denials": {"sources": [log], "since": "pass", "cursor_dir": cursors, "commit": False,
                                        "skip_covered": False}}


def commit(cursors, token):
    return {"dir": cursors, "name": "pass", "token": token}


def listing(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as handle:
            out[name] = (handle.read(), stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode))
    return out


def test_writes_the_files_once_with_their_modes_and_shows_the_diff(tmp_path):
    state_dir = str(tmp_path / "state" / "deeper")
    lock_file = str(tmp_path / "lock")
    checked, = run_tasks(tmp_path, [write_task(state_dir, lock_file)], check=True, diff=True, name="check")
    assert checked["changed"] is True and not os.path.exists(state_dir), checked
    assert [d["after_header"] for d in checked["diff"]] == [state_dir + "/events.json", state_dir + "/convergence.json"]
    assert '"/srv/a b"' in checked["diff"][0]["after"] and checked["diff"][0]["before"] == ""

    first, again, changed = run_tasks(tmp_path, [
        write_task(state_dir, lock_file), write_task(state_dir, lock_file),
        write_task(state_dir, lock_file, record={"version": 1, "profiles": {}})], diff=True)
    assert first["changed"] is True and first["written"] == [state_dir + "/events.json",
                                                              state_dir + "/convergence.json"], first
    assert again["changed"] is False and again["written"] == [] and again["diff"] == [], again
    assert changed["written"] == [state_dir + "/convergence.json"], changed
    assert '"passes": 1' in changed["diff"][0]["before"] and '"passes"' not in changed["diff"][0]["after"]
    files = listing(state_dir)
    assert sorted(files) == ["convergence.json", "events.json"]  # no temp file left
    assert json.loads(files["events.json"][0]) == EVENTS and files["events.json"][1] == 0o600
    assert json.loads(files["convergence.json"][0]) == {"version": 1, "profiles": {}}
    assert files["convergence.json"][1] == 0o644
    assert files["events.json"][0].count(b"\n") == 1  # events on one line, the record indented
    assert files["convergence.json"][0].count(b"\n") > 1
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700


def test_an_unwritable_directory_keeps_every_old_file_and_says_what_to_do(tmp_path):
    state_dir = str(tmp_path / "state")
    lock_file = str(tmp_path / "lock")
    ok, = run_tasks(tmp_path, [write_task(state_dir, lock_file)], name="first")
    assert ok["changed"] is True, ok
    before = listing(state_dir)
    blocked = str(tmp_path / "not-a-dir")
    with open(blocked, "w") as handle:
        handle.write("a file where the state directory should be\n")
    failed, = run_tasks(tmp_path, [write_task(blocked + "/state", lock_file)], name="blocked")
    assert failed.get("failed") is True, failed
    assert "cannot write the armada.apparmor state in %s/state" % blocked in failed["msg"], failed["msg"]
    assert "free space in (or make writable)" in failed["msg"], failed["msg"]
    assert listing(state_dir) == before


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (a disk that fills up); root only - the unit suite runs as root on the lab machine and CI."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN): %s" % proc.stderr.strip())
    try:
        yield str(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_at_the_second_file_leaves_both_old_files(tmp_path, small_tmpfs):
    state_dir = small_tmpfs + "/state"
    lock_file = str(tmp_path / "lock")
    ok, = run_tasks(tmp_path, [write_task(state_dir, lock_file)], name="first")
    assert ok["changed"] is True, ok
    before = listing(state_dir)
    # fill the disk but for two pages: the new events.json (one page) fits, the large record does not
    fd = os.open(small_tmpfs + "/filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(small_tmpfs + "/filler", os.path.getsize(small_tmpfs + "/filler") - 2 * 4096)
    big = {"version": 1, "profiles": {"/usr/bin/p%04d" % i: {"passes": i} for i in range(2000)}}
    log = tmp_path / "audit.log"
    log.write_text(AVC % (1, 1))
    cursors = str(tmp_path / "cursors")
    read, failed = run_tasks(tmp_path, [
        read_log(str(log), cursors),
        write_task(state_dir, lock_file, events=[{"id": "e2"}], record=big,
                   commit_cursor=commit(cursors, "{{ r0.cursor.token }}"))], name="full")
    assert read["cursor"]["token"] and failed.get("failed") is True, (read, failed)
    assert not os.path.exists(cursors + "/pass.json")  # the cursor did not move: the events are read again
    assert "no space left on device" in failed["msg"] and "the previous state files are kept" in failed["msg"], failed
    assert listing(state_dir) == before  # events.json too, and no temp file


def test_the_cursor_is_committed_after_the_files_in_the_same_task(tmp_path):
    state_dir = str(tmp_path / "state")
    lock_file = str(tmp_path / "lock")
    log = tmp_path / "audit.log"
    log.write_text(AVC % (1, 1))
    cursors = str(tmp_path / "cursors")
    read, checked = run_tasks(tmp_path, [
        read_log(str(log), cursors),
        write_task(state_dir, lock_file, commit_cursor=commit(cursors, "{{ r0.cursor.token }}"))],
        check=True, name="check")
    assert checked["changed"] is True and checked["cursor_committed"] is True, checked
    assert not os.path.exists(cursors) and not os.path.exists(state_dir)
    results = run_tasks(tmp_path, [
        read_log(str(log), cursors),                                                               # 0
        write_task(state_dir, lock_file, commit_cursor=commit(cursors, "{{ r0.cursor.token }}")),  # 1 files + cursor
        read_log(str(log), cursors),                                                               # 2 nothing new
        write_task(state_dir, lock_file, commit_cursor=commit(cursors, "{{ r0.cursor.token }}")),  # 3 same again
        {"ansible.builtin.shell": "echo '%s' >> %s" % ((AVC % (2, 2)).strip(), log)},              # 4 a new line
        read_log(str(log), cursors),                                                               # 5
        write_task(state_dir, lock_file, commit_cursor=commit(cursors, "{{ r5.cursor.token }}")),  # 6 moves on
        write_task(state_dir, lock_file, commit_cursor=commit(cursors, "{{ r2.cursor.token }}")),  # 7 a stale token
        write_task(state_dir, lock_file, commit_cursor=commit(cursors, "")),                       # 8 nothing to commit
    ])
    first, again, stale = results[1], results[3], results[7]
    assert first["changed"] is True and first["cursor_committed"] is True and len(first["written"]) == 2, first
    assert results[2]["events"] == [], results[2]  # the committed cursor is where the next read starts
    assert again["changed"] is False and again["cursor_committed"] is False, again
    assert len(results[5]["events"]) == 1 and results[6]["cursor_committed"] is True, results[6]
    assert stale.get("failed") is True and "cannot commit cursor pass" in stale["msg"], stale
    assert "moved since this token was issued" in stale["msg"], stale
    assert results[8]["changed"] is False and results[8]["cursor_committed"] is False, results[8]


def test_read_returns_the_files_and_refuses_names_that_are_not_plain_json_files(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "events.json").write_text('[{"id": "e1"}]')
    (state_dir / "empty.json").write_text("")
    (state_dir / "garbage.json").write_text("[{'not json")
    (tmp_path / "escape.json").write_text("{}")
    read = {"path": str(state_dir), "lock_file": str(tmp_path / "lock")}
    results = run_tasks(tmp_path, [
        {"armada.apparmor.state": dict(read, read=["events.json", "empty.json", "missing.json"])},
        {"armada.apparmor.state": dict(read, read=["garbage.json"])},
        {"armada.apparmor.state": dict(read, read=["../escape.json"])},
    ] + [{"armada.apparmor.state": dict(read, files=[{"name": name, "data": {}}])}
         for name in ("../escape.json", ".hidden.json", "events.txt")])
    assert results[0]["changed"] is False, results[0]
    assert results[0]["data"] == {"events.json": [{"id": "e1"}], "empty.json": None, "missing.json": None}
    assert results[1].get("failed") is True and "garbage.json is not JSON" in results[1]["msg"], results[1]
    assert "move it away and run again" in results[1]["msg"]
    for result in results[2:]:
        assert result.get("failed") is True and "use a plain name ending in .json" in result["msg"], result
    assert sorted(os.listdir(str(state_dir))) == ["empty.json", "events.json", "garbage.json"]
    assert (tmp_path / "escape.json").read_text() == "{}"


def test_a_lock_held_by_another_run_fails_without_writing(tmp_path):
    state_dir = str(tmp_path / "state")
    lock_file = str(tmp_path / "lock")
    with held_lock(lock_file, "update: another pass"):
        busy, = run_tasks(tmp_path, [write_task(state_dir, lock_file, lock_timeout=0.5)], name="busy")
    assert busy.get("failed") is True and busy["changed"] is False, busy
    assert "update: another pass" in busy["msg"], busy["msg"]
    assert not os.path.exists(state_dir)
