"""Fail when any module or filter's documentation does not render with ansible-doc.

ansible-test sanity cannot run offline here, so this is the gate that keeps DOCUMENTATION, EXAMPLES
and RETURN valid YAML with the fields ansible-doc needs.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSIBLE_DOC = os.path.join(ROOT, ".venv", "bin", "ansible-doc")


def plugin_names(kind_dir):
    path = os.path.join(ROOT, "plugins", kind_dir)
    if not os.path.isdir(path):
        return []
    return sorted(f[:-3] for f in os.listdir(path) if f.endswith(".py") and not f.startswith("_"))


def filter_names():
    """Filter plugin files may hold several filters; each documented filter has NAME.py or NAME.yml."""
    path = os.path.join(ROOT, "plugins", "filter")
    if not os.path.isdir(path):
        return []
    names = set()
    for f in os.listdir(path):
        base, ext = os.path.splitext(f)
        if ext in (".py", ".yml", ".yaml") and not base.startswith("_"):
            names.add(base)
    return sorted(names)


def render(kind, name):
    fqcn = "armada.apparmor." + name
    proc = subprocess.run([ANSIBLE_DOC, "-t", kind, "--json", fqcn], capture_output=True, text=True)
    if proc.returncode != 0:
        return "exit %d: %s" % (proc.returncode, proc.stderr.strip()[-2000:])
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return "ansible-doc printed no JSON"
    doc = (data.get(fqcn) or {}).get("doc")
    if not doc:
        return "no DOCUMENTATION found"
    missing = [k for k in ("short_description", "description", "author") if not doc.get(k)]
    if missing:
        return "documentation lacks %s" % ", ".join(missing)
    entry = data[fqcn]
    if not entry.get("examples"):
        return "no EXAMPLES"
    if kind == "module" and "return" not in entry:
        return "no RETURN"
    if kind == "module":
        attrs = doc.get("attributes") or {}
        for attr in ("check_mode", "diff_mode"):
            if attr not in attrs:
                return "attributes lack %s" % attr
    return None


def main():
    failures = []
    count = 0
    for kind, names in (("module", plugin_names("modules")), ("filter", filter_names())):
        for name in names:
            count += 1
            err = render(kind, name)
            status = "ok" if err is None else "FAIL: " + err
            print("ansible-doc -t %s armada.apparmor.%s: %s" % (kind, name, status))
            if err:
                failures.append(name)
    print("%d plugin(s) rendered, %d failed" % (count, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
