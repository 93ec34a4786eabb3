"""``module_defaults`` groups of meta/runtime.yml, through real ansible-playbook on localhost.

Each group's options are set once at play level and no task repeats them; what the modules did shows
that the defaults reached them: the profile lands in the tree named by ``group/armada.apparmor.all``, the
lock file is where ``group/armada.apparmor.locking`` says, and the parser of ``group/armada.apparmor.policy``
is the one status tried.
"""
import json
import os
import subprocess
import sys

from aa_playbook import ANSIBLE_PLAYBOOK, COLL_ROOT, make_tree
from aa_support import PARSER

PROFILE = ("abi <abi/3.0>,\ninclude <tunables/global>\n"
           "profile armada-md /usr/bin/armada-md {\n  /etc/armada-md.conf r,\n}\n")


def play(tmp_path, module_defaults, tasks):
    """Run one play with ``module_defaults``; return the registered results by task name."""
    out = str(tmp_path / "results.json")
    names = [t["register"] for t in tasks]
    collect = "{{ {%s} | to_json }}" % ", ".join("'%s': %s" % (n, n) for n in names)
    body = [{"hosts": "localhost", "gather_facts": False, "module_defaults": module_defaults,
             "tasks": [dict(t, ignore_errors=True) for t in tasks]
             + [{"ansible.builtin.copy": {"content": collect, "dest": out}}]}]
    pb = tmp_path / "play.yml"
    pb.write_text(json.dumps(body))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLL_ROOT, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=%s" % sys.executable, str(pb)],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), check=False)
    assert os.path.exists(out), "ansible-playbook failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:],
                                                                          proc.stderr[-4000:])
    with open(out) as handle:
        return json.load(handle)


def test_group_defaults_reach_every_module(tmp_path):
    tree = make_tree(tmp_path)
    lock_file = str(tmp_path / "group.lock")
    results = play(tmp_path, {
        "group/armada.apparmor.all": {"apparmor_d": tree},
        "group/armada.apparmor.locking": {"lock_file": lock_file, "lock_timeout": 5},
        "group/armada.apparmor.policy": {"features_file": "/etc/apparmor.d/abi/3.0"},
    }, [
        {"armada.apparmor.profile": {"name": "armada-md", "content": PROFILE, "mode": "complain", "reload": False,
                                     "backup": False}, "register": "deployed"},
        {"armada.apparmor.status": {}, "register": "status"},
    ])
    assert results["deployed"]["changed"] is True, results["deployed"]
    # all: the profile went into the tree, not /etc/apparmor.d, and status read that tree
    assert os.path.isfile(os.path.join(tree, "armada-md"))
    assert not os.path.exists("/etc/apparmor.d/armada-md")
    assert "armada-md" in results["status"]["files"], sorted(results["status"]["files"])
    assert results["status"]["files"]["armada-md"]["path"] == os.path.join(tree, "armada-md")
    # locking: the profile module took the lock at the group's lock file
    assert os.path.exists(lock_file)


def test_policy_group_sets_the_parser(tmp_path):
    tree = make_tree(tmp_path)
    missing = str(tmp_path / "no-such-apparmor_parser")
    results = play(tmp_path, {
        "group/armada.apparmor.all": {"apparmor_d": tree},
        "group/armada.apparmor.policy": {"parser": missing},
    }, [{"armada.apparmor.status": {}, "register": "status"},
        {"armada.apparmor.status": {"parser": PARSER}, "register": "own"}])
    # status tried the group's parser (and says it is missing); a task's own option wins over the group
    assert results["status"]["parser"]["available"] is False
    assert missing in results["status"]["parser"]["reason"], results["status"]["parser"]
    assert results["own"]["parser"]["available"] is True and results["own"]["parser"]["path"] == PARSER


def test_group_options_a_module_lacks_are_refused(tmp_path):
    """Why the groups differ: Ansible hands every default of a group to every module in it."""
    tree = make_tree(tmp_path)
    results = play(tmp_path, {"group/armada.apparmor.all": {"apparmor_d": tree, "lock_timeout": 5}},
                      [{"armada.apparmor.status": {}, "register": "status"}])
    assert results["status"]["failed"] is True
    assert "Unsupported parameters" in results["status"]["msg"] and "lock_timeout" in results["status"]["msg"]
