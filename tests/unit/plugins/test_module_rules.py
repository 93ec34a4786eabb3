"""armada.apparmor.rules through real ansible-playbook on fixture trees, with to_rules-shaped input."""
import os

from aa_playbook import make_tree, run_tasks, tree_state

DEMO = """abi <abi/3.0>,
include <tunables/global>

# demo profile: comments and layout must survive
profile armada-demo /usr/bin/armada-demo {
  include <abstractions/base>
  include if exists <local/usr.bin.armada-demo>

  # config
  /etc/armada-demo.conf r,
  /var/lib/armada-demo/** rw,   # state
}
"""
# the shape of one profile's entry in to_rules' result (docs/answers.md): items carry rendered text
ENTRY = {
    "rules": [
        {"kind": "file", "path": "/var/log/armada-demo.log", "perms": "w", "text": "/var/log/armada-demo.log w,"},
        {"kind": "file", "path": "/var/lib/armada-demo/db", "perms": "r", "text": "/var/lib/armada-demo/db r,"},
        {"kind": "file", "path": "/etc/ld.so.cache", "perms": "r", "text": "/etc/ld.so.cache r,"},
        {"kind": "capability", "text": "capability net_bind_service,"},
    ],
    "deny": [{"kind": "file", "path": "/etc/shadow", "text": "deny /etc/shadow r,"}],
    "children": {"helper": {"rules": [{"kind": "file", "text": "/usr/bin/armada-helper mr,"}], "hat": True}},
}


def _task(tree, tmp_path, **kw):
    opts = {"apparmor_d": tree, "backup_dir": str(tmp_path / "backups"), "profile": "armada-demo"}
    opts.update(kw)
    return {"armada.apparmor.rules": opts}


def _setup(tmp_path):
    tree = make_tree(tmp_path)
    with open(os.path.join(tree, "usr.bin.armada-demo"), "w") as handle:
        handle.write(DEMO)
    return tree


def _read(path):
    with open(path) as handle:
        return handle.read()


def test_add_to_profile_skips_covered_keeps_comments_and_is_idempotent(tmp_path):
    tree = _setup(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    check, added, again = run_tasks(tmp_path, [
        dict(_task(tree, tmp_path, entry=ENTRY, target="profile"), check_mode=True),
        _task(tree, tmp_path, entry=ENTRY, target="profile"),
        _task(tree, tmp_path, entry=ENTRY, target="profile"),
    ])
    assert check["changed"] and check["added"] == added["added"], check
    assert added["changed"] and added["snapshot_id"] and added["abi"] == "3.0"
    assert not again["changed"] and again["snapshot_id"] is None
    texts = sorted(a["text"] for a in added["added"])
    # /var/lib/armada-demo/db r is covered by '/var/lib/armada-demo/** rw', /etc/ld.so.cache r by abstractions/base
    assert texts == sorted(["/var/log/armada-demo.log w,", "capability net_bind_service,", "deny /etc/shadow r,",
                            "/usr/bin/armada-helper mr,"])
    assert sorted(c["text"] for c in added["covered"]) == ["/etc/ld.so.cache r,", "/var/lib/armada-demo/db r,"]
    text = _read(path)
    assert text.startswith(DEMO[:DEMO.rindex("}")])  # everything before the closing brace is untouched
    for line in ("# demo profile: comments and layout must survive", "  # config",
                 "  /var/lib/armada-demo/** rw,   # state", "  /var/log/armada-demo.log w,",
                 "  deny /etc/shadow r,", "  ^helper {"):
        assert line in text.splitlines(), (line, text)
    assert added["kernel"][0]["skipped"] and "no AppArmor" in added["kernel"][0]["reason"]


def test_local_target_and_absent(tmp_path):
    tree = _setup(tmp_path)
    local = os.path.join(tree, "local", "usr.bin.armada-demo")
    rules = ["/srv/armada-demo/** r,", {"text": "network inet stream,"}]
    added, removed, removed_again = run_tasks(tmp_path, [
        _task(tree, tmp_path, rules=rules, target="local", comment="added by test"),
        _task(tree, tmp_path, rules=rules[:1], state="absent"),
        _task(tree, tmp_path, rules=rules[:1], state="absent"),
    ])
    assert added["changed"] and added["target"] == "local"
    assert _read(os.path.join(tree, "usr.bin.armada-demo")) == DEMO  # the profile itself untouched
    assert removed["changed"] and [r["text"] for r in removed["removed"]] == ["/srv/armada-demo/** r,"]
    assert not removed_again["changed"]
    assert _read(local) == "# added by test\nnetwork inet stream,\n"


def test_local_target_adds_missing_include_line(tmp_path):
    tree = _setup(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    with open(path, "w") as handle:
        handle.write(DEMO.replace("  include if exists <local/usr.bin.armada-demo>\n", ""))
    res, = run_tasks(tmp_path, [_task(tree, tmp_path, rules=["/srv/x r,"], target="local")])
    assert res["changed"]
    assert "  include if exists <local/usr.bin.armada-demo>" in _read(path).splitlines()
    assert _read(os.path.join(tree, "local", "usr.bin.armada-demo")) == "/srv/x r,\n"


def test_rule_that_does_not_compile_changes_nothing(tmp_path):
    tree = _setup(tmp_path)
    before = tree_state(tree)
    # the rule engine accepts a variable it cannot check; the real parser knows it is never declared
    res, bad, newer = run_tasks(tmp_path, [
        _task(tree, tmp_path, rules=["@{ARMADA_UNDEFINED}/x r,"], target="profile"),
        _task(tree, tmp_path, rules=["this is not a rule"], target="profile"),
        _task(tree, tmp_path, rules=["userns,"], target="profile"),  # needs ABI 4.0, the host ships 3.0
    ])
    assert res.get("failed") and "does not compile" in res["msg"], res
    assert res["changed"] is False, "a refused change changed nothing"
    assert "ARMADA_UNDEFINED" in res["parser_message"]
    assert bad.get("failed") and "not a valid rule" in bad["msg"]
    assert newer.get("failed") and "4.0" in newer["msg"]
    assert tree_state(tree) == before
    assert not os.path.exists(str(tmp_path / "backups"))


def test_check_mode_is_byte_identical_and_diff_shows_profile_change(tmp_path):
    tree = _setup(tmp_path)
    before = tree_state(tree)
    res, = run_tasks(tmp_path, [_task(tree, tmp_path, rules=["/srv/x r,"], target="profile")], check=True, diff=True)
    assert res["changed"] and tree_state(tree) == before
    assert not os.path.exists(str(tmp_path / "backups"))
    prof_diff = res["diff"][0]
    assert prof_diff["before"] == DEMO
    assert prof_diff["after"] == DEMO.replace("   # state\n}", "   # state\n  /srv/x r,\n}")


def test_an_allowed_change_hat_creates_the_empty_hat_once(tmp_path):
    # to_rules' child entry for an answered change_hat event: no rules, add_hat set (aa-logprof's "Add hat")
    tree = _setup(tmp_path)
    path = os.path.join(tree, "usr.bin.armada-demo")
    entry = {"rules": [], "deny": [], "children": {
        "HANDLING_UNTRUSTED_INPUT": {"rules": [], "deny": [], "hat": True,
                                     "add_hat": {"events": ["e1"], "hosts": ["web1"], "answers": [0]}},
        "only_pending": {"rules": [], "deny": [], "hat": True}}}
    added, again = run_tasks(tmp_path, [_task(tree, tmp_path, entry=entry, target="auto"),
                                        _task(tree, tmp_path, entry=entry, target="auto")])
    assert added["changed"] and not added.get("failed"), added
    assert [a["profile"] for a in added["added"]] == ["armada-demo//HANDLING_UNTRUSTED_INPUT"]
    lines = _read(path).splitlines()
    assert "  ^HANDLING_UNTRUSTED_INPUT {" in lines and not any("only_pending" in line for line in lines)
    assert not again["changed"], again


def test_absent_removes_a_local_rule_with_a_hash_in_its_path(tmp_path):
    # '#' inside a path is not a comment (apparmor_parser reads /srv/#cache/** as one path)
    tree = _setup(tmp_path)
    local = os.path.join(tree, "local", "usr.bin.armada-demo")
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with open(local, "w") as handle:  # as an admin writes it: unquoted (the engine renders '"/srv/#cache/**" r,')
        handle.write("/srv/#cache/** r,\n/srv/keep r,\n")
    removed, = run_tasks(tmp_path, [_task(tree, tmp_path, rules=["/srv/#cache/** r,"], state="absent")])
    assert removed["changed"], removed
    assert removed["removed"] == [{"profile": "armada-demo", "text": "/srv/#cache/** r,", "file": local}]
    assert _read(local) == "/srv/keep r,\n"
