"""Real services, end to end (issue 16): packaged daemons that systemd starts, learned to enforce mode.

On the systemd-booted (journald flavour) lab host, through the playbooks only, as a user would:

* Debian's nginx (no AppArmor profile shipped: master + workers, drops to www-data, port 80) is started by
  systemd at boot, so it runs unconfined when learning starts; `armada-fetch.service` (baked into the lab
  image, tests/lab/workload/) is a oneshot whose script executes helpers from real packages: /usr/bin/curl
  (fetching nginx's page) and /usr/bin/sha256sum. Also listed: a copy of sleep started before learn WITHOUT a
  service (it stays "not attached") and a program that never runs ("never exercised").
1. profile_fleet (learn + pass 1): learn restarts nginx (once) and its processes are confined by the
   complain-mode profile; the exercise is real HTTP (a page and a missing page, 404) and a start of
   armada-fetch. The first-pass AppArmor log is saved (the aa-logprof comparison, docs/journeys.md).
1b. aa-logprof (JSON mode, tests/lab/aa_logprof_counts.py) reads the same log in the guest: its counts are
   recorded beside ours, and nginx's capabilities and file paths in its profile are the ones our pass asked.
2. Review rounds, the way the README says: the test edits the newest apparmor-pending-<pass id>.yml (answers
   set as text) and saves it under its own name in the inventory's group_vars/all; round 1 answers nginx and the
   helpers' execs - curl `Px` (its own profile), sha256sum `Cx` (a child profile in armada-fetch's) - and leaves
   armada-fetch's file questions open: they come back (those the helpers made, under the helper's profile now),
   the answered ones do not; curl's profile is loaded in complain mode. Later rounds answer the rest;
   profile_fleet (2 passes) after each round, until every profile is converged; curl's profile then holds its
   network use (logged only once it runs under its own profile) and the parent's does not. The status playbook
   shows processes per profile.
3. enforce: nginx, armada-fetch and curl are enforced, the sleep copy and the never-run program are skipped with
   their reasons; nginx serves a page and a 404 with 0 DENIED, also after `systemctl restart nginx`;
   armada-fetch (with curl and sha256sum) runs with 0 DENIED; `aa-exec -p /usr/sbin/nginx -- cat /etc/shadow` is
   DENIED.

Expectations come from what the test started and from AppArmor's behaviour, read on the host (/proc, the kernel's
profile list, the journal), never from the code under test. This scenario replaces the earlier attach and
exec-target lab tests (one chained scenario on the systemd host keeps CI's time).
The numbers (passes, questions asked and answered per round, rules, seconds per play) are printed and written
to <lab run dir>/services-journey.json; the first-pass log to <lab run dir>/services-first-pass.log.
Everything is put back: profiles unloaded and removed, state/backup directories removed, the sleep copy
killed, nginx restarted unconfined.
"""
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml
from chained_steps import step_chain

pytestmark = pytest.mark.lab

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ANSIBLE_PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
CALLBACKS = os.path.join(HERE, "journey_callback")
NGINX = "/usr/sbin/nginx"
FETCH = "/usr/local/bin/armada-fetch"
CURL = "/usr/bin/curl"
SHA = "/usr/bin/sha256sum"
IDLE = "/usr/local/bin/armada-attach-idle"
NEVER = "/usr/local/bin/armada-attach-never"
STATE = "/var/lib/armada-services"
BACKUPS = "/var/backups/armada-services"
# How the reviewer answers the helpers' execs: curl gets its own profile (Px), sha256sum a child profile inside
# armada-fetch's (Cx); aa-logprof's menu key and item for each (step 1b answers aa-logprof the same way).
HELPER_EXEC = {CURL: "Px", SHA: "Cx"}
LOGPROF_MENU = {"Px": ("p", "Profile"), "Cx": ("c", "Child")}
SERVICE_PROFILES = [NGINX, FETCH, CURL]
FILES = ["usr.sbin.nginx", "usr.local.bin.armada-fetch", "usr.bin.curl", "usr.local.bin.armada-attach-idle",
         "usr.local.bin.armada-attach-never"]
PAGE_AND_404 = ("curl -fsS -o /dev/null http://127.0.0.1/ && "
                "test \"$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/armada-missing)\" = 404")
SETTINGS = {
    "apparmor_programs": [{"path": NGINX, "service": "nginx"}, FETCH, IDLE, NEVER],
    # real HTTP: a page and a missing one (404; -f would fail on it, so the code is checked instead)
    "apparmor_learn_exercise": {NGINX: PAGE_AND_404, FETCH: "systemctl start armada-fetch.service"},
    "apparmor_state_dir": STATE, "apparmor_backup_dir": BACKUPS,
    "apparmor_enforce_serial": [1],
    "apparmor_enforce_health_check": {NGINX: PAGE_AND_404, FETCH: "systemctl start armada-fetch.service"},
}
MAX_RUNS = 4   # profile_fleet runs after the first before the test gives up on convergence
PASSES = 2     # per run after the first: a Px target's own events (e.g. curl's network use) show in the same run

step = step_chain("services")


def _counter():
    spec = importlib.util.spec_from_file_location("aa_logprof_counts",
                                                  os.path.join(ROOT, "tests", "lab", "aa_logprof_counts.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.count_rules


count_rules = _counter()   # the same rule count as the aa-logprof comparison's


def labels(lab, host, exe):
    """The AppArmor label of every running process of EXE, read from /proc on the host."""
    out = lab.ssh(host, "for p in $(pidof %s); do cat /proc/$p/attr/current; echo; done" % exe).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def ansible_yaml(text):
    """YAML read as Ansible reads inventory (the pending file's entries are !unsafe mappings)."""
    from ansible.parsing.dataloader import DataLoader
    return DataLoader().load(text) or {}


def answer_as_reviewer(text, chosen):
    """The pending file's text with every question CHOSEN(question) picks answered: allow (an exec: HELPER_EXEC's
    mode, else the first suggested one). Edited as text, as a person would; returns (text, answered)."""
    head, *entries = re.split(r"(?m)^(?=  - !unsafe$)", text)
    out, answered = [head], 0
    for entry in entries:
        (q,) = ansible_yaml("x:\n" + entry)["x"]
        if chosen(q) and "answer: pending  #" in entry:
            new = "answer: allow  #"
            if q["match"]["kind"] == "exec":
                mode = HELPER_EXEC.get(q["match"]["path"]) or q["suggestions"]["exec_modes"][0]
                new = "exec_mode: %s\n    answer: allow  #" % mode
            entry = entry.replace("answer: pending  #", new, 1)
            answered += 1
        out.append(entry)
    return "".join(out), answered


class Run:
    def __init__(self, lab, host):
        self.lab, self.host = lab, host
        self.work = tempfile.mkdtemp(prefix="armada-services-lab-")
        self.inv = os.path.join(self.work, "inventory")
        os.makedirs(os.path.join(self.inv, "group_vars", "all"))
        shutil.copy(lab.inventory, os.path.join(self.inv, "hosts.yml"))
        with open(os.path.join(self.inv, "group_vars", "all", "apparmor.yml"), "w") as fh:
            yaml.safe_dump(SETTINGS, fh)
        self.numbers = {"host": host, "plays": [], "rounds": []}
        self.started = time.monotonic()

    def must(self, command, timeout=300):
        return self.lab.must(self.host, command, timeout)

    def play(self, name, extra=None):
        """armada.apparmor.NAME on the host (settings from the inventory); {tasks, stats, log}."""
        n = len(self.numbers["plays"]) + 1
        results = os.path.join(self.work, "%02d-%s.json" % (n, name))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                   ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_HOST_KEY_CHECKING="false",
                   ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="journey_results",
                   ARMADA_JOURNEY_RESULTS=results, ANSIBLE_NOCOLOR="1", PWD=self.work)
        cmd = [ANSIBLE_PLAYBOOK, "-i", os.path.join(self.inv, "hosts.yml"), "--limit", self.host,
               "armada.apparmor." + name]
        if extra:
            cmd += ["-e", json.dumps(extra)]
        log = results[:-5] + ".log"  # readable while the play runs
        t0 = time.monotonic()
        with open(log, "w") as fh:
            res = subprocess.run(cmd, cwd=self.work, env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                 stderr=subprocess.STDOUT, timeout=3600, check=False)
        self.numbers["plays"].append({"play": name, "seconds": round(time.monotonic() - t0, 1)})
        with open(log) as fh:
            text = fh.read()
        assert res.returncode == 0, text[-6000:]
        with open(results) as fh:
            out = json.load(fh)
        out["log"] = text
        return out

    def task(self, out, name):
        found = [t["result"] for t in out["tasks"] if t["task"].endswith(name) and t["host"] == self.host]
        assert found, "no task %r in:\n%s" % (name, out["log"][-4000:])
        return found[-1]

    def record(self):
        return json.loads(self.must("cat %s/convergence.json" % STATE))["profiles"]

    def newest_pending(self):
        """(path, text, questions) of the newest review round (pass ids sort like the passes ran)."""
        path = sorted(glob.glob(os.path.join(self.work, "apparmor-pending-*.yml")))[-1]
        with open(path) as fh:
            text = fh.read()
        (var, questions), = ansible_yaml(text).items()
        assert var == "apparmor_answers_pending_" + os.path.basename(path)[len("apparmor-pending-"):-4], var
        return path, text, questions or []

    def rules(self):
        """Rules per service profile, counted in the profile files on the host (local/ includes too)."""
        out = {}
        for prof in SERVICE_PROFILES:
            name = prof.lstrip("/").replace("/", ".")
            out[prof] = count_rules(self.must("cat /etc/apparmor.d/%s; cat /etc/apparmor.d/local/%s 2>/dev/null; "
                                              "true" % (name, name)))
        return out

    def denied(self, since, profile):
        """DENIED records of PROFILE (and its children) in the journal since the epoch second SINCE."""
        out = self.must("journalctl -q -o cat --since @%d _TRANSPORT=audit _TRANSPORT=kernel | "
                        "grep 'apparmor=\"DENIED\"' | grep -F 'profile=\"%s' || true" % (since, profile))
        return [line for line in out.splitlines() if line.strip()]

    def now(self):
        return int(self.must("date +%s"))

    def save_numbers(self):
        self.numbers["total_seconds"] = round(time.monotonic() - self.started, 1)
        path = os.path.join(self.lab.run_dir(), "services-journey.json")
        with open(path, "w") as fh:
            json.dump(self.numbers, fh, indent=1)
        print("services journey numbers (%s):\n%s" % (path, json.dumps(self.numbers, indent=1)))


@pytest.fixture(scope="module")
def run(lab):
    hosts = [h for h, hv in sorted(lab.hosts.items()) if hv.get("armada_lab_flavour") == "journald"]
    if not hosts:
        pytest.fail("the services journey needs a systemd-booted lab host (`tests/lab/lab up 1 --flavours journald`)")
    r = Run(lab, hosts[0])
    r.must("systemctl is-active nginx && test -x %s && cp /bin/sleep %s && cp /bin/true %s && "
           "(setsid %s 3600 </dev/null >/dev/null 2>&1 &)" % (FETCH, IDLE, NEVER, IDLE))
    yield r
    r.save_numbers()
    lab.ssh(r.host, "kill $(pidof %s); cd /etc/apparmor.d && for f in %s; do "
                    "[ -e $f ] && apparmor_parser -R $f; rm -f $f local/$f; done; rm -f %s %s; rm -rf %s %s "
                    "/var/lib/armada-fetch; systemctl restart nginx; true"
            % (IDLE, " ".join(FILES), IDLE, NEVER, STATE, BACKUPS))
    assert labels(lab, r.host, NGINX) and set(labels(lab, r.host, NGINX)) == {"unconfined"}
    # the play logs and review rounds, for reading after a run (the lab's run directory is thrown away with it)
    shutil.copytree(r.work, os.path.join(lab.run_dir(), "services-journey-work"), dirs_exist_ok=True)
    shutil.rmtree(r.work, ignore_errors=True)


@step("1")
def test_learn_restarts_the_running_daemon_and_exercises_both_services(run):
    before = labels(run.lab, run.host, NGINX)
    assert len(before) >= 2 and set(before) == {"unconfined"}, before  # master + worker(s), started at boot
    assert labels(run.lab, run.host, IDLE) == ["unconfined"]
    since = run.now()

    out = run.play("profile_fleet")
    restart = run.task(out, "Restart the services whose program runs unconfined, so its profile attaches")
    assert restart["changed"] and [r["item"] for r in restart["results"]] == ["nginx"], restart
    said = run.task(out, "Programs not attached - their processes run unconfined and no service is named to restart")
    assert IDLE in said["msg"] and NGINX not in said["msg"] and NEVER not in said["msg"], said

    after = labels(run.lab, run.host, NGINX)
    assert len(after) >= 2 and set(after) == {NGINX + " (complain)"}, after
    assert labels(run.lab, run.host, IDLE) == ["unconfined"]
    # the oneshot ran under its complain-mode profile: curl fetched nginx's page, sha256sum checked it
    assert run.must("sha256sum -c /var/lib/armada-fetch/index.html.sha256").strip() == \
        "/var/lib/armada-fetch/index.html: OK"

    rec = run.record()
    assert rec[NGINX]["exercised"] is True and rec[NGINX]["unconfined"] == 0, rec[NGINX]
    assert rec[FETCH]["exercised"] is True, rec[FETCH]
    assert (rec[IDLE]["unconfined"], rec[IDLE]["converged"]) == (1, False), rec[IDLE]
    assert (rec[NEVER]["exercised"], rec[NEVER]["converged"]) == (False, False), rec[NEVER]

    _, _, questions = run.newest_pending()
    asked = {p: sum(q["profile"] == p for q in questions) for p in (NGINX, FETCH)}
    assert asked[NGINX] > 0 and asked[FETCH] > 0, asked
    # both helpers were seen at work: the script's exec of each is a question
    execs = {q["match"]["path"] for q in questions if q["profile"] == FETCH and q["match"]["kind"] == "exec"}
    assert {CURL, SHA} <= execs, execs
    run.numbers["first_pass"] = {"questions": len(questions), "per_profile": asked}

    # the first-pass AppArmor log: the kernel's records in the journal's syslog form (-o short, which libapparmor and
    # so aa-logprof parse; -o short-iso it does not); the audit transport's copies are the same records
    log = run.must("journalctl -q -o short --since @%d _TRANSPORT=kernel | "
                   "grep 'apparmor=' || true" % since)
    with open(os.path.join(run.lab.run_dir(), "services-first-pass.log"), "w") as fh:
        fh.write(log)
    run.numbers["first_pass"]["log_records"] = len(log.splitlines())


@step("1b")
def test_aa_logprof_reads_the_same_first_pass_log(run):
    """aa-logprof (the guest's apparmor-utils, JSON mode, tests/lab/aa_logprof_counts.py) over the first-pass log,
    answering the helpers' execs as this journey does: its counts go beside ours (docs/journeys.md), and nginx's
    capabilities and file paths in the profile it saves are the ones the first pass asked about (the same log read
    by two parsers)."""
    with open(os.path.join(run.lab.run_dir(), "services-first-pass.log")) as fh:
        log = fh.read()
    with open(os.path.join(ROOT, "tests", "lab", "aa_logprof_counts.py")) as fh:
        driver = fh.read()
    run.lab.must(run.host, "rm -rf /tmp/armada-aa-logprof && mkdir /tmp/armada-aa-logprof")
    assert run.lab.ssh(run.host, "cat > /tmp/armada-aa-logprof/first-pass.log", input=log).returncode == 0
    t0 = time.monotonic()
    res = run.lab.ssh(run.host, "python3 - --log /tmp/armada-aa-logprof/first-pass.log --keep /tmp/armada-aa-logprof/"
                                "profiles %s %s %s" % (" ".join("--exec %s=%s" % (p, LOGPROF_MENU[m][0]) for p, m in
                                                                  HELPER_EXEC.items()), NGINX, FETCH),
                      input=driver, timeout=900)
    assert res.returncode == 0, (res.stdout, res.stderr)
    counts = json.loads(res.stdout)
    counts["seconds"] = round(time.monotonic() - t0, 1)
    run.numbers["aa_logprof"] = counts
    saved = run.lab.must(run.host, "cat /tmp/armada-aa-logprof/profiles/usr.sbin.nginx")
    theirs = {"capability": set(re.findall(r"(?m)^\s*capability (\w+),$", saved)),
              "file": set(re.findall(r"(?m)^\s*(?:owner )?(/\S+) [rwaklmix]+,$", saved)) - {NGINX}}
    _, _, questions = run.newest_pending()
    ours = {"capability": {q["match"]["capname"] for q in questions
                           if q["profile"] == NGINX and q["match"]["kind"] == "capability"},
            "file": {q["match"]["path"] for q in questions if q["profile"] == NGINX and q["match"]["kind"] == "file"}}
    assert theirs == ours and ours["capability"] and ours["file"], (theirs, ours)
    assert {e["headers"]["Execute"]: e["answer"] for e in counts["exec_answers"]} == \
        {p: LOGPROF_MENU[m][1] for p, m in HELPER_EXEC.items()}, counts["exec_answers"]
    run.lab.ssh(run.host, "rm -rf /tmp/armada-aa-logprof")


@step("2")
def test_review_rounds_until_both_services_converge(run):
    """Round 1 answers nginx and the helpers' execs (the decisions that change what the next pass sees: the
    helpers then run inside armada-fetch's profile, whose network use is logged) and leaves armada-fetch's file
    questions open; each later round answers what the newest file asks."""
    rounds = run.numbers["rounds"]
    for n in range(1, MAX_RUNS + 1):
        path, text, questions = run.newest_pending()
        rec = run.record()
        if not questions and all(rec[p]["converged"] for p in SERVICE_PROFILES):
            break
        if n == 1:
            reviewed, answered = answer_as_reviewer(text, lambda q: q["profile"] == NGINX
                                                    or q["match"]["kind"] == "exec")
        else:
            # a child profile's questions (PARENT//CHILD) are its parent's to answer
            reviewed, answered = answer_as_reviewer(text, lambda q: q["profile"].split("//")[0] in SERVICE_PROFILES)
        if n == 1:
            assert 0 < answered < len(questions), (answered, len(questions))  # round 1 leaves questions open
        if answered:  # a round with nothing to answer is just run again
            with open(os.path.join(run.inv, "group_vars", "all", os.path.basename(path)), "w") as fh:
                fh.write(reviewed)
        out = run.play("profile_fleet", {"apparmor_profile_fleet_passes": PASSES})
        _, _, left = run.newest_pending()
        rounds.append({"round": n, "asked": len(questions), "answered": answered, "asked_next": len(left),
                       "rules": run.rules(), "seconds": run.numbers["plays"][-1]["seconds"]})
        if n == 1:
            # round 1's open questions come back (kept events), the answered ones do not. Those the helpers made
            # come back under the helper's own profile now (Px: curl's; Cx: the child of armada-fetch): in pass 1,
            # before any exec answer, their //null- events were asked of the parent, as aa-logprof asks them
            still_open = {q["match"]["path"] for q in questions
                          if q["profile"] == FETCH and q["match"]["kind"] != "exec"}
            assert still_open and still_open <= {q["match"].get("path") for q in left}, left
            fetch_text = run.must("cat /etc/apparmor.d/usr.local.bin.armada-fetch")
            assert [q for q in left if q["profile"] == CURL], left
            assert "%s Px," % CURL in fetch_text, fetch_text
            assert run.lab.kernel_mode(run.host, CURL) == "complain"   # created by the pass, like a learned one
            assert [q for q in left if q["profile"] == FETCH + "//" + SHA], left
            assert "%s Cx," % SHA in fetch_text and "profile %s " % SHA in fetch_text, fetch_text
            answered_before = [(q["profile"], q["match"]) for q in questions
                               if q["profile"] == NGINX or q["match"]["kind"] == "exec"]
            assert not [q for q in left if (q["profile"], q["match"]) in answered_before], left
        assert "FAILED" not in out["log"]
    else:
        pytest.fail("not converged after %d profile_fleet runs: %s" % (MAX_RUNS, json.dumps(rounds)))
    saved = glob.glob(os.path.join(run.inv, "group_vars", "all", "apparmor-pending-*"))
    assert len(saved) >= 2, saved   # the rounds add up: every round's file stays in the inventory
    rec = run.record()
    run.numbers["converged"] = {p: {k: rec[p].get(k) for k in ("passes", "quiet_passes", "confined", "converged")}
                                for p in SERVICE_PROFILES}
    run.numbers["rules"] = run.rules()
    for prof in SERVICE_PROFILES:
        assert rec[prof]["converged"] is True and rec[prof]["pending"] == 0, rec[prof]
    # curl's own profile holds what curl did: its network use, logged only once it ran under its own profile
    # (a //null- child's network accesses are not logged), and its reads of the user database; the parent's
    # profile (the shell script) does not
    curl_text = run.must("cat /etc/apparmor.d/usr.bin.curl")
    fetch_text = run.must("cat /etc/apparmor.d/usr.local.bin.armada-fetch")
    assert re.search(r"(?m)^\s*network inet stream,", curl_text), curl_text
    assert re.search(r"(?m)^\s*(owner )?/etc/passwd r,", curl_text), curl_text
    assert "/etc/passwd" not in fetch_text and "network" not in fetch_text, fetch_text

    status = run.play("status")
    table = "\n".join(run.task(status, "Fleet table")["msg"])
    rows = {line.split()[1]: line.split() for line in table.splitlines()[1:] if line.split()}
    nginx_procs = len(labels(run.lab, run.host, NGINX))
    assert rows[NGINX][-2:] == ["%d/0" % nginx_procs, "-"], table   # processes confined/unconfined, drift
    assert rows[IDLE][-2:] == ["0/1", "-"], table


@step("3")
def test_enforce_serves_with_no_denial_and_denies_what_nginx_never_did(run):
    since = run.now()
    run.play("enforce", {"apparmor_enforce_soak_seconds": 5})
    with open(os.path.join(run.work, "apparmor-enforce-report", run.host + ".yml")) as fh:
        report = yaml.safe_load(fh)
    plan = {p["profile"]: p for p in report["profiles"]}
    run.numbers["enforce"] = {p: plan[p]["action"] for p in plan}
    assert plan[NEVER]["action"] == "skip" and plan[NEVER]["reason"].startswith("never exercised: "), plan[NEVER]
    assert plan[IDLE]["action"] == "skip" and plan[IDLE]["reason"].startswith("not attached: 1 process(es)"), \
        plan[IDLE]
    modes = run.must("cat /sys/kernel/security/apparmor/profiles")
    for prof in SERVICE_PROFILES:
        assert "%s (enforce)" % prof in modes, (prof, plan.get(prof), modes)
    assert set(labels(run.lab, run.host, NGINX)) == {NGINX + " (enforce)"}

    run.must(PAGE_AND_404)
    run.must("systemctl restart nginx && " + PAGE_AND_404)
    assert set(labels(run.lab, run.host, NGINX)) == {NGINX + " (enforce)"}
    run.must("rm -f /var/lib/armada-fetch/index.html* && systemctl start armada-fetch.service && "
             "sha256sum -c /var/lib/armada-fetch/index.html.sha256")
    for prof in SERVICE_PROFILES:
        assert run.denied(since, prof) == [], (prof, run.denied(since, prof))

    # outside its behaviour: nginx's profile never ran cat nor read /etc/shadow
    res = run.lab.ssh(run.host, "aa-exec -p %s -- cat /etc/shadow" % NGINX)
    assert res.returncode != 0 and "root:" not in res.stdout, res
    denied = run.denied(since, NGINX)
    assert denied, "no DENIED record for aa-exec -p nginx -- cat /etc/shadow"
    run.numbers["denied_outside"] = denied[-1][-300:]
