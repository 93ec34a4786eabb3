#!/usr/bin/env python3
"""Run aa-logprof (apparmor-utils' JSON mode) over a log and count its questions and rules (issue 16).

Why: docs/journeys.md puts aa-logprof's numbers beside the collection's for the same first-pass log. This runs
INSIDE a lab guest (aa-logprof refuses to run where AppArmor is not enabled) as root:

    tests/lab/lab ssh lab1 'cat > /tmp/first-pass.log' < tests/fixtures/journeys/services-first-pass.log
    tests/lab/lab ssh lab1 'sudo python3 - --log /tmp/first-pass.log --exec /usr/bin/curl=p \\
        --exec /usr/bin/sha256sum=c /usr/sbin/nginx /usr/local/bin/armada-fetch' < tests/lab/aa_logprof_counts.py

It starts from what aa-genprof starts from: a copy of /etc/apparmor.d (abstractions, tunables) without any
profile of the programs, plus aa-autodep's stub for each program. aa-logprof then reads the log in its JSON
mode (one JSON object per line on stdout, one answer per line on stdin): every question offering "Allow" gets
it with the rule itself selected (not an abstraction offered before it), an exec question the menu key
``--exec PATH=KEY`` names (p: Profile, c: Child; default i: Inherit - its JSON default_key is 0, which it does
not accept), any other its default; the changes are saved. A dialog repeated three times in a row stops the run
with an error instead of spinning. Its reload into the kernel is switched off, so the profiles loaded on the host
are never touched. Prints one JSON object: questions per dialog kind, the exec questions' answers, and the rules
per profile counted in the saved files (lines of a profile body ending in "," that are not include/abi lines).
tests/integration/test_services_lab.py (step 1b) runs it in the guest on the journey's first-pass log.
Python 3 standard library plus the guest's python3-apparmor.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# The child: aa-autodep's stubs (mode "autodep"), or aa-logprof's own steps (mode "logprof"), each with the kernel
# reload switched off.
CHILD = r"""
import sys
import apparmor.aa as aa
import apparmor.ui as aaui
aa.reload_base = lambda *args, **kwargs: None
mode, profile_dir, logfile = sys.argv[1:4]
if mode == "logprof":
    aaui.set_json_mode()
aa.init_aa(profiledir=profile_dir)
aa.set_logfile(logfile)
aa.loadincludes()
if mode == "autodep":
    aa.read_profiles()
    for program in sys.argv[4:]:
        aa.autodep(program)
else:
    aa.read_profiles(True)
    aa.do_logprof_pass('')
"""


# the distribution's python3, where python3-apparmor is installed (not a virtualenv's or pyenv's)
PYTHON = "/usr/bin/python3"
HOTKEY = re.compile(r"\(([^)])\)")


def hotkey(item: str) -> str:
    m = HOTKEY.search(item)
    return m.group(1).lower() if m else ""


def answer(msg: dict, counts: dict, exec_answers: list, exec_keys: dict) -> dict:
    """The reply to one dialog: Allow when offered; an exec question the key EXEC_KEYS gives its target (the same
    decision as the collection's answers), else (I)nherit (aa-logprof's JSON mode sends no usable default for exec
    questions: default_key 0, which it then does not accept, so it asks again forever); else the default; save at
    the end."""
    kind = msg["dialog"]
    counts[kind] = counts.get(kind, 0) + 1
    if kind == "promptuser":
        items = msg.get("menu_items") or []
        selected = 0
        keys = {hotkey(i): re.sub(r"[][()]", "", i) for i in items}   # "[(D)eny]" -> d: "Deny"
        title = msg.get("title") or ""
        if "s" in keys and keys["s"].endswith("Save Changes"):
            key = "s"
        elif "a" in keys and keys["a"].endswith("Allow"):
            # the rule itself, not an abstraction offered before it: re-asked when the abstraction does not cover
            # the access, and the collection's answers give rules too
            key = "a"
            options = msg.get("options") or []
            selected = next((i for i, o in enumerate(options) if not o.startswith("include ")), 0)
        elif "Execute" in (msg.get("headers") or {}):
            key = exec_keys.get(msg["headers"]["Execute"], "i")
            exec_answers.append({"headers": msg.get("headers"), "answer": keys.get(key, key)})
        else:
            key = msg.get("default_key") or ""
        counts.setdefault("titles", {})
        counts["titles"][title or "(none)"] = counts["titles"].get(title or "(none)", 0) + 1
        return {"dialog": "promptuser", "response_key": key, "selected": selected}
    if kind in ("yesno", "yesnocancel"):
        return {"dialog": kind, "response_key": msg.get("default") or "n"}
    if kind == "getstring":
        return {"dialog": kind, "response": msg.get("default") or ""}
    if kind == "changes":
        return {"dialog": kind, "response": ""}
    raise SystemExit("aa-logprof asked %r, which this driver does not answer: %s" % (kind, msg))


def count_rules(text: str) -> int:
    """Rule lines of profile text: lines inside a profile body ending in ',' that are not abi/include lines
    (child profiles and hats count their own rules; comments do not count)."""
    n = 0
    depth = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#"):
            continue
        s = s.split(" #", 1)[0].strip()
        if s.endswith("{"):
            depth += 1
        elif s.startswith("}"):
            depth -= 1
        elif depth > 0 and s.endswith(",") and not s.startswith(("include", "abi")):
            n += 1
    return n


def rules_in(path: str) -> int:
    with open(path) as fh:
        return count_rules(fh.read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="the log to read (syslog/journal text of AppArmor records)")
    ap.add_argument("--keep", help="copy the saved profiles to this directory")
    ap.add_argument("--profile-dir", default="/etc/apparmor.d",
                    help="the profile tree to start from (abstractions, tunables); default /etc/apparmor.d")
    ap.add_argument("--stubs", help="a directory holding aa-autodep's stubs of the programs, made on the guest: "
                                    "used instead of running aa-autodep (which needs the programs installed)")
    ap.add_argument("--exec", action="append", default=[], metavar="PATH=KEY",
                    help="the exec question for PATH gets menu key KEY (p: Profile, c: Child, i: Inherit, the default)")
    ap.add_argument("programs", nargs="+", help="the programs profiled (absolute paths)")
    args = ap.parse_args()
    exec_keys = dict(item.rsplit("=", 1) for item in args.exec)
    tmp = tempfile.mkdtemp(prefix="aa-logprof-counts-")
    try:
        pdir = os.path.join(tmp, "apparmor.d")
        shutil.copytree(args.profile_dir, pdir, symlinks=True)
        for prog in args.programs:  # no profile of the programs: start from aa-autodep's stub
            name = prog.lstrip("/").replace("/", ".")
            for p in (os.path.join(pdir, name), os.path.join(pdir, "local", name)):
                if os.path.lexists(p):
                    os.unlink(p)
        before = set(os.listdir(pdir))
        log = os.path.abspath(args.log)
        if args.stubs:
            for prog in args.programs:
                name = prog.lstrip("/").replace("/", ".")
                shutil.copy(os.path.join(args.stubs, name), os.path.join(pdir, name))
        else:
            subprocess.run([PYTHON, "-c", CHILD, "autodep", pdir, log] + args.programs, check=True,
                           stdout=subprocess.DEVNULL)
        stubs = {p: rules_in(os.path.join(pdir, p.lstrip("/").replace("/", "."))) for p in args.programs}
        proc = subprocess.Popen([PYTHON, "-c", CHILD, "logprof", pdir, log],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        counts: dict = {}
        exec_answers: list = []
        infos = []
        last, repeats = None, 0
        for line in proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if msg.get("dialog") in ("apparmor-json-version", "info", "important"):
                infos.append(msg.get("data"))
                continue
            repeats = repeats + 1 if line == last else 0
            last = line
            if repeats >= 3:  # aa-logprof re-asks a dialog whose answer it did not accept: stop, do not spin
                proc.kill()
                print(json.dumps({"error": "aa-logprof repeated a dialog 3 times", "dialog": msg}))
                return 1
            proc.stdin.write(json.dumps(answer(msg, counts, exec_answers, exec_keys)) + "\n")
            proc.stdin.flush()
        rc = proc.wait()
        if rc != 0:
            print(json.dumps({"error": "aa-logprof exited %d" % rc, "infos": infos[-5:]}))
            return 1
        profiles = {}
        for name in sorted(set(os.listdir(pdir)) - before | {p.lstrip("/").replace("/", ".") for p in args.programs}):
            path = os.path.join(pdir, name)
            if os.path.isfile(path):
                profiles[name] = rules_in(path)
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copy(path, os.path.join(args.keep, name))
        questions = counts.get("promptuser", 0) - counts.get("titles", {}).get("Changed Local Profiles", 0)
        print(json.dumps({"questions": questions, "dialogs": counts, "exec_answers": exec_answers, "stub_rules": stubs,
                          "rules": profiles, "rules_total": sum(profiles.values())}, indent=1))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
