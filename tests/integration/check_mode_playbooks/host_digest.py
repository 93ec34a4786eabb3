"""Host-state digest for tests/integration/test_check_mode_lab.py: everything the roles can change on a host.

Runs ON the lab host as root (python3 standard library), through plain ssh (`python3 -c`) or the
`digest.yml` playbook (ansible.builtin.script). Prints one JSON object {key: value}; keys:

- file:PATH  "f MODE UID:GID SIZE SHA256 MTIME_NS"; dir:PATH "d MODE UID:GID MTIME_NS"; link:PATH "l TARGET"
  for every entry under /etc/apparmor.d, the parser cache, the state and backup dirs (defaults and the test's),
  the exercise output dir and the host-wide lock file; absent:PATH when a root does not exist
- loaded:NAME  the mode in /sys/kernel/security/apparmor/profiles
- policy:NAME  "DIR MODE SHA1 RAW_SHA1" from /sys/kernel/security/apparmor/policy/profiles/*/ (the loaded
  policy's hashes; DIR's counter changes on every replacement). The kernel's policy/revision is not read: a
  read returns only after the NEXT policy change (EAGAIN with O_NONBLOCK), so it cannot be sampled
- limit:printk_ratelimit, limit:audit_rate_limit, limit:audit_backlog_limit (what the learn role lifts)
"""
import hashlib
import json
import os
import subprocess
import sys

ROOTS = ["/etc/apparmor.d", "/etc/apparmor", "/var/cache/apparmor", "/var/lib/armada-apparmor",
         "/var/backups/armada-apparmor", "/var/lib/armada-cm", "/var/backups/armada-cm", "/var/tmp/armada-cm",
         "/run/armada-apparmor.lock"]
SFS = "/sys/kernel/security/apparmor"


def _read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").strip()
    except OSError as exc:
        return "unreadable: %s" % exc.strerror


def _entry(path):
    st = os.lstat(path)
    own = "%d:%d" % (st.st_uid, st.st_gid)
    mode = "%04o" % (st.st_mode & 0o7777)
    if os.path.islink(path):
        return "link:" + path, "l " + os.readlink(path)
    if os.path.isdir(path):
        return "dir:" + path, "d %s %s %d" % (mode, own, st.st_mtime_ns)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "file:" + path, "f %s %s %d %s %d" % (mode, own, st.st_size, digest.hexdigest(), st.st_mtime_ns)


def main():
    out = {}
    for root in ROOTS:
        if not os.path.lexists(root):
            out["absent:" + root] = "absent"
            continue
        key, val = _entry(root)
        out[key] = val
        if os.path.isdir(root) and not os.path.islink(root):
            for base, dirs, files in os.walk(root):
                for name in sorted(dirs + files):
                    key, val = _entry(os.path.join(base, name))
                    out[key] = val
    for line in _read(SFS + "/profiles").splitlines():
        name, _, mode = line.rpartition(" (")
        out["loaded:" + name] = mode.rstrip(")")
    pdir = SFS + "/policy/profiles"
    for d in sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []:
        p = os.path.join(pdir, d)
        out["policy:" + _read(p + "/name")] = "%s %s %s %s" % (
            d, _read(p + "/mode"), _read(p + "/sha1"), _read(p + "/raw_sha1"))
    out["limit:printk_ratelimit"] = _read("/proc/sys/kernel/printk_ratelimit")
    try:
        st = subprocess.run(["auditctl", "-s"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, check=False).stdout
    except OSError:
        st = ""
    for line in st.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("rate_limit", "backlog_limit"):
            out["limit:audit_" + parts[0]] = parts[1]
    json.dump({"label": sys.argv[1] if len(sys.argv) > 1 else "", "digest": out}, sys.stdout, sort_keys=True)


main()
