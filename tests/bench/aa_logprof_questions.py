#!/usr/bin/python3
"""Count the questions aa-logprof asks on a log, answering each as a reviewer who allows everything would.

Runs on a host with AppArmor and python3-apparmor (a lab guest): aa-logprof needs the kernel's AppArmor
to start. Drives ``aa-logprof --json`` (one JSON dialog per line on stdout, one JSON reply per line on
stdin): file, capability and network questions are answered Allow with the exact path (the narrowest
option, never an abstraction or a glob), exec questions Inherit (ix), which is what the pending-file
benchmark answers on our side (docs/benchmarks.md, "Pending file questions"). The final save prompt is
answered Save and not counted. Prints one line per question and the total, as JSON on the last line.

    usage: aa_logprof_questions.py PROFILE_DIR LOG_FILE
"""
import json
import re
import subprocess
import sys


def key_of(menu_items, word):
    """The key letter of the menu item holding ``word`` ('(A)llow' -> 'a')."""
    for item in menu_items:
        if word.lower() in item.lower().replace("(", "").replace(")", ""):
            m = re.search(r"\((\w)\)", item)
            if m:
                return m.group(1).lower()
    return None


def main(profile_dir, log_file):
    proc = subprocess.Popen(["aa-logprof", "--json", "-d", profile_dir, "-f", log_file], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    questions = []
    for line in proc.stdout:
        line = line.strip()
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        dialog = msg.get("dialog")
        reply = None
        if dialog == "promptuser":
            menu = msg.get("menu_items") or []
            headers = msg.get("headers") or {}
            if key_of(menu, "Save Changes"):
                reply = {"response_key": key_of(menu, "Save Changes"), "selected": 0}
            else:
                execute = "Execute" in headers
                key = key_of(menu, "Inherit") if execute else key_of(menu, "Allow")
                options = msg.get("options") or []
                path = headers.get("Path")
                selected = 0
                for i, opt in enumerate(options):
                    if path is not None and opt.replace("owner ", "", 1).strip() == path:
                        selected = i
                questions.append({k: v for k, v in headers.items()})
                print("Q%d %s" % (len(questions), json.dumps(headers, sort_keys=True)), file=sys.stderr)
                reply = {"response_key": key, "selected": selected}
        elif dialog in ("yesno", "yesnocancel"):
            reply = {"response": msg.get("default") or "n"}
        elif dialog == "getstring":
            reply = {"response": msg.get("default") or ""}
        elif dialog == "changes":
            reply = {"response": "ok"}
        if reply is not None:
            reply["dialog"] = dialog
            proc.stdin.write(json.dumps(reply) + "\n")
            proc.stdin.flush()
    proc.wait()
    print(json.dumps({"questions": len(questions), "returncode": proc.returncode}))
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
