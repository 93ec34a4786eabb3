#!/usr/bin/env python3
"""Tasks of the update role that reach a managed host in one pass (round trips per host per pass).

The role runs twice on localhost over ``-c local`` - a fixture AppArmor tree (module_defaults), a fixture audit
log with one event that becomes a rule in pass 1, nothing new in pass 2 - with ``-vvv``. A task reached the host
when its block of the log has an ``ESTABLISH LOCAL CONNECTION`` line (Ansible prints one each time it runs a
module on the host; set_fact, debug and include_tasks run on the controller) and its YAML is not
``delegate_to: localhost`` (the controller's own writes: fetched profiles, pending file). A loop counts once per
item. Prints one markdown section.

Usage: bench_update_round_trips.py [--collections DIR]   (DIR/ansible_collections/armada/apparmor = the tree to
measure; default build/collections, this checkout)
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
PROFILE = """abi <abi/3.0>,
include <tunables/global>
profile armada-count /usr/local/bin/armada-count {
  include <abstractions/base>
}
"""
EVENT = ('type=AVC msg=audit(1700000000.001:1): apparmor="ALLOWED" operation="open" class="file" '
         'profile="armada-count" name="/srv/count/a" pid=811 comm="x" requested_mask="r" denied_mask="r" '
         'fsuid=0 ouid=0\n')


def setup(work):
    tree = os.path.join(work, "tree")
    for sub in ("abi", "abstractions", "tunables"):
        shutil.copytree(os.path.join("/etc/apparmor.d", sub), os.path.join(tree, sub), symlinks=True)
    for sub in ("local", "disable", "force-complain"):
        os.makedirs(os.path.join(tree, sub))
    with open(os.path.join(tree, "armada-count"), "w") as handle:
        handle.write(PROFILE)
    os.makedirs(os.path.join(work, "sfs", "features"))
    open(os.path.join(work, "sfs", "profiles"), "w").close()
    with open(os.path.join(work, "audit.log"), "w") as handle:
        handle.write(EVENT)
    options = {"profiles": ["armada-count"], "programs": [], "sources": ["auditd:%s/audit.log" % work],
               "state_dir": work + "/state", "backup_dir": work + "/backups", "default": "allow",
               "fetch_dir": work + "/profiles", "pending_file": work + "/pending.yml"}
    # the role's options under both naming schemes (update_X, apparmor_update_X): a checkout of either measures
    role_vars = {}
    for key, value in options.items():
        role_vars["update_" + key] = value
        role_vars["apparmor_update_" + key] = value
    play = [{"hosts": "localhost", "gather_facts": False,
             "module_defaults": {"group/armada.apparmor.all": {"apparmor_d": tree},
                                 "group/armada.apparmor.policy": {"securityfs": work + "/sfs"},
                                 "group/armada.apparmor.locking": {"lock_file": work + "/lock"},
                                 "armada.apparmor.rules": {"reload": False}},
             "roles": [{"role": "armada.apparmor.update", "vars": role_vars}]}]
    path = os.path.join(work, "play.yml")
    with open(path, "w") as handle:
        json.dump(play, handle)
    return path


def on_host(log):
    """[(task name, times)] of the tasks that ran a module on the host."""
    out = []
    for block in re.split(r"^TASK \[", log, flags=re.M)[1:]:
        if "ESTABLISH LOCAL CONNECTION" not in block:
            continue
        name = block.split("]", 1)[0].split(" : ", 1)[-1]
        path = re.search(r"^task path: (.*):\d+$", block, re.M).group(1)
        with open(path) as handle:
            task = [t for t in yaml.safe_load(handle) if t.get("name") == name]
        if task and task[0].get("delegate_to") == "localhost":
            continue
        items = len(re.findall(r"^(?:ok|changed|failed): \[localhost\] => \(item=", block, re.M))
        out.append((name, max(items, 1)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--collections", default=os.path.join(ROOT, "build", "collections"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="armada-roundtrips-")
    try:
        play = setup(work)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=args.collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
        passes = []
        for _ in (1, 2):
            proc = subprocess.run([PLAYBOOK, "-vvv", "-i", "localhost,", "-c", "local", "-e",
                                   "ansible_python_interpreter=%s" % sys.executable, play],
                                  capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                sys.exit("ansible-playbook failed:\n" + proc.stdout[-4000:] + proc.stderr[-2000:])
            passes.append(on_host(proc.stdout))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("## Update pass: tasks that reach a host\n")
    print("One host, one tracked profile; pass 1 writes one rule, pass 2 finds nothing new. Counted from the "
          "role's real `-vvv` run (see the script's docstring for the method).\n")
    print("| task | pass 1 | pass 2 |\n|---|---:|---:|")
    names = [n for n, _ in passes[0]] + [n for n, _ in passes[1] if n not in dict(passes[0])]
    for name in names:
        print("| %s | %s | %s |" % (name, dict(passes[0]).get(name, 0), dict(passes[1]).get(name, 0)))
    print("| **total** | **%d** | **%d** |\n" % (sum(n for _, n in passes[0]), sum(n for _, n in passes[1])))
    print("Before the state module (commit 87f1437: a shell task wrote events.json and convergence.json, a "
          "denials task committed the cursor): 7 tasks per pass in both passes, measured with this script "
          "(`--collections` pointing at a checkout of that commit). In general 5 + one per profile of the pass "
          "that has rules (was 6 + one); a 1,000-host pass saves 1,000 module round trips.\n")


if __name__ == "__main__":
    main()
