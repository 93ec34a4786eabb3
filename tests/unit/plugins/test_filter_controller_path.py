"""armada.apparmor.controller_path and profile_file_name through a real ansible-playbook run, the way the roles
use them: a copy task ``delegate_to`` the controller whose dest is built from a host-derived name. Hostile
names fail the task naming the host and the value; nothing is written outside the directory, and a symlink
in it is never written through (issue 12, item 1)."""
import os

from aa_playbook import run_tasks


def _write(name, directory, host="web2", **kw):
    opts = ", ".join(["host=%r" % host] + ["%s=%r" % (k, v) for k, v in kw.items()])
    return {"ansible.builtin.copy": {
        "content": "from the host\n", "mode": "0644",
        "dest": "{{ host_value | armada.apparmor.controller_path(%r, %s) }}" % (directory, opts)},
        "vars": {"host_value": name}}


def _files(top):
    return sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs)


def test_hostile_names_fail_naming_host_and_value_and_write_nothing(tmp_path):
    top = tmp_path / "ctl"
    profiles = top / "a" / "profiles"
    profiles.mkdir(parents=True)
    (top / "a" / "victim").write_text("keep\n")
    os.symlink(str(top / "a" / "victim"), str(profiles / "usr.bin.linked"))
    d = str(profiles)
    results = run_tasks(tmp_path, [
        _write("../../X", d),
        _write("..", d),
        _write(".ssh", d),
        _write("x\x1b]0;owned\x07", d),
        _write("usr.bin.sudo", d, allowed=["usr.bin.foo"], what="profile file name"),
        _write("usr.bin.linked", d),
        _write("../x.tar.gz", d, form="snapshot_file", what="snapshot file"),
        _write("usr.bin.foo", d, allowed=["usr.bin.foo"], what="profile file name"),
        {"ansible.builtin.debug": {
            "msg": "{{ '/usr/local/bin/armada-workload' | armada.apparmor.profile_file_name }}"}},
    ], name="names")
    expected = [
        "web2: the file name '../../X' is refused: it contains '/'",
        "web2: the file name '..' is refused: it starts with '.'",
        "web2: the file name '.ssh' is refused: it starts with '.'",
        "web2: the file name 'x\\x1b]0;owned\\x07' is refused: it contains the character U+001B",
        "web2: the profile file name 'usr.bin.sudo' is refused: the controller did not ask for it (it asked for "
        "'usr.bin.foo')",
        "web2: %s/usr.bin.linked is a symlink (to %r); the controller never writes through a symlink" % (
            d, str(top / "a" / "victim")),
        "web2: the snapshot file '../x.tar.gz' is refused: it contains '/'",
    ]
    for res, msg in zip(results, expected):
        assert res.get("failed") and msg in res["msg"], (msg, res)
    assert not results[7].get("failed") and results[7]["changed"], results[7]
    assert results[8]["msg"] == "usr.local.bin.armada-workload"
    assert (top / "a" / "victim").read_text() == "keep\n"
    assert _files(str(top)) == ["a/profiles/usr.bin.foo", "a/profiles/usr.bin.linked", "a/victim"]
    assert os.path.islink(str(profiles / "usr.bin.linked"))
