"""AppArmor on one host: kernel state from securityfs, policy files, and ``apparmor_parser`` calls.

Why this exists: ``aa-status --json`` prints nothing at all when the kernel lacks AppArmor, and the
modules must still work there (file operations succeed, loading is reported as skipped).  So this file
reads /sys/kernel/security/apparmor itself and drives the real ``apparmor_parser`` for everything that
needs AppArmor's grammar (validation with ``-QK``, profile names with ``-N``, compiled policy with
``-S`` for drift checks).  Every function takes the AppArmor directory, the securityfs root and the
parser path as arguments so tests can point them at fixture trees.

Pure standard library, Python 3.8+.
"""
import hashlib
import os
import re
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.armada.apparmor.plugins.module_utils.fileops import is_skippable_name

APPARMOR_D = "/etc/apparmor.d"
SECURITYFS = "/sys/kernel/security/apparmor"
MODULE_ENABLED = "/sys/module/apparmor/parameters/enabled"
PARSER_CANDIDATES = ("/sbin/apparmor_parser", "/usr/sbin/apparmor_parser", "/usr/bin/apparmor_parser")
PARSER_CONF = "/etc/apparmor/parser.conf"
PROC = "/proc"
# Modes a profile file can declare (profile flags or links) -- the `profile` module's choices.
FILE_MODES = ("enforce", "complain", "audit", "kill", "unconfined", "disabled")
# Flags that are modes; only one of them is kept in a header (audit is a separate flag in AppArmor;
# "enforce" is the absence of the others: AppArmor 3.x has no such flag, aa-enforce removes "complain").
MODE_FLAGS = ("complain", "kill", "unconfined", "prompt", "default_allow", "enforce")
# Stubs shipped to keep programs unconfined until their profile is ready: never bulk-switch them.
STUB_FLAGS = ("unconfined", "prompt", "default_allow")
_NOISE = re.compile(r"^Cache read/write disabled: .*$|^Warning from stdin .*cache.*$", re.M)


class HostError(Exception):
    """A host-side operation failed; the message is meant for the user."""


# ---------------------------------------------------------------- processes (/proc)

def _proc_label(proc: str, pid: str) -> Optional[str]:
    """The AppArmor label of a process (``attr/apparmor/current`` on newer kernels, else ``attr/current``)."""
    for rel in ("attr/apparmor/current", "attr/current"):
        try:
            with open(os.path.join(proc, pid, rel), "rb") as fh:
                text = fh.read().decode("utf-8", "replace").strip("\x00\n ")
        except OSError:
            continue
        if text:
            return text
    return None


def program_processes(programs: Sequence[str], proc: str = PROC) -> Dict[str, Dict[str, Any]]:
    """Confined and unconfined processes of each program (matched by ``/proc/PID/exe``).

    Why: a profile attaches at exec, so a program started before its profile was loaded runs unconfined
    although the profile is enforced - the report must show it. ``labels`` counts the profile of each
    confined process (``NAME (MODE)`` as the kernel prints it). A process without a readable label (a kernel
    without AppArmor) is unconfined; processes that exit while being read, or whose exe cannot be read, are
    left out. One pass over /proc, no subprocess.
    """
    wanted: Dict[str, Dict[str, Any]] = {p: {"confined": 0, "unconfined": 0, "labels": {}} for p in programs}
    if not wanted:
        return wanted
    try:
        pids = [d for d in os.listdir(proc) if d.isdigit()]
    except OSError:
        return wanted
    for pid in pids:
        try:
            exe = os.readlink(os.path.join(proc, pid, "exe"))
        except OSError:
            continue
        if exe.endswith(" (deleted)"):
            exe = exe[:-len(" (deleted)")]
        entry = wanted.get(exe)
        if entry is None:
            continue
        label = _proc_label(proc, pid)
        if label is None and not os.path.isdir(os.path.join(proc, pid)):
            continue
        if label is None or label == "unconfined":
            entry["unconfined"] += 1
        else:
            entry["confined"] += 1
            entry["labels"][label] = entry["labels"].get(label, 0) + 1
    return wanted


# ---------------------------------------------------------------- kernel (securityfs)

def kernel_state(securityfs: str = SECURITYFS, module_param: str = MODULE_ENABLED) -> Dict[str, Any]:
    """Whether the kernel has AppArmor and it is enabled, with a reason when it is not usable.

    Reads the module parameter and securityfs directly (never ``aa-status``, which prints nothing
    when AppArmor is absent).
    """
    # the module parameter describes the real securityfs only (a test tree stands on its own)
    param = _module_param(module_param) if os.path.abspath(securityfs) == SECURITYFS else None
    present = os.path.isfile(os.path.join(securityfs, "profiles"))
    if present and param in (None, "Y"):
        return {"available": True, "enabled": True, "reason": ""}
    if param == "N" or (param is not None and param != "Y"):
        reason = "AppArmor is built into the kernel but disabled (apparmor=0 or another LSM selected)"
    elif param == "Y" and not present:
        reason = "securityfs is not mounted at %s" % securityfs
    else:
        reason = "the kernel has no AppArmor (%s missing)" % os.path.join(securityfs, "profiles")
    return {"available": param is not None, "enabled": False, "reason": reason}


def apparmor_status(root: str = "/") -> Dict[str, Any]:
    """Whether the kernel has AppArmor enabled (its module parameter), as ``{"enabled", "reason"}``;
    never raises. Unlike :func:`kernel_state` it needs no securityfs: the log readers ask whether the
    kernel can log AppArmor records at all, so a host that produces no events can say why."""
    enabled_file = _under(root, MODULE_ENABLED)
    value = _module_param(enabled_file)
    if value is None:
        return {"enabled": False, "reason": "the kernel has no AppArmor (%s is missing)" % enabled_file}
    if value != "Y":
        return {"enabled": False, "reason": "AppArmor is built in but disabled (enabled=%s)" % value}
    if not os.path.isdir(_under(root, SECURITYFS)):
        return {"enabled": True, "reason": "AppArmor is enabled; securityfs is not mounted"}
    return {"enabled": True, "reason": "AppArmor is enabled"}


def _under(root: str, path: str) -> str:
    """``path`` inside an alternative root (``/`` means the real one)."""
    return path if root in ("", "/") else os.path.join(root, path.lstrip("/"))


def _module_param(path: str) -> Optional[str]:
    """The AppArmor module's ``enabled`` parameter (``Y``/``N``); None when the kernel has no such module."""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def loaded_profiles(securityfs: str = SECURITYFS) -> Dict[str, str]:
    """Map of loaded profile name -> mode, read from ``<securityfs>/profiles`` ('name (mode)' lines)."""
    result: Dict[str, str] = {}
    try:
        with open(os.path.join(securityfs, "profiles"), encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return result
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        name, sep, mode = line.rpartition(" (")
        if sep and mode.endswith(")"):
            result[name] = mode[:-1]
        else:
            result[line] = "unknown"
    return result


def kernel_policy_hashes(securityfs: str = SECURITYFS) -> Dict[str, Dict[str, str]]:
    """Per loaded profile, the hashes the kernel exposes under ``policy/profiles/*``.

    ``raw_sha1``/``raw_sha256`` hash the whole binary blob that was loaded, which is exactly what
    ``apparmor_parser -S`` produces for that file, so comparing them detects content drift without
    looking at mtimes.  Returns {} when the kernel does not export them (hashing disabled).
    """
    base = os.path.join(securityfs, "policy", "profiles")
    out: Dict[str, Dict[str, str]] = {}
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for entry in entries:
        pdir = os.path.join(base, entry)
        name = _read(os.path.join(pdir, "name"))
        if not name:
            continue
        hashes = {}
        for fname in ("raw_sha256", "raw_sha1", "sha256", "sha1"):
            value = _read(os.path.join(pdir, fname))
            if value:
                hashes[fname] = value.lower()
        raw = os.path.join(pdir, "raw_data")
        if os.path.exists(raw):
            hashes["raw_data"] = raw
        out[name] = hashes
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- the parser

def find_parser(parser: Optional[str] = None) -> str:
    """Path of ``apparmor_parser`` (the given one, else the usual places, else $PATH)."""
    if parser:
        if os.path.isfile(parser) and os.access(parser, os.X_OK):
            return parser
        raise HostError("apparmor_parser not found or not executable at %s" % parser)
    for cand in PARSER_CANDIDATES:
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    found = shutil.which("apparmor_parser")
    if found:
        return found
    raise HostError("apparmor_parser not found: install the 'apparmor' package")


def clean_message(text: str) -> str:
    """Parser output without the cache chatter it prints on kernels without AppArmor."""
    return "\n".join(line for line in _NOISE.sub("", text).splitlines() if line.strip()).strip()


def run_parser(args: Sequence[str], parser: str, stdin: Optional[bytes] = None,
               timeout: int = 300) -> Tuple[int, bytes, str]:
    """Run apparmor_parser; return (rc, stdout bytes, cleaned stderr)."""
    try:
        proc = subprocess.run([parser] + list(args), input=stdin, capture_output=True,
                              timeout=timeout, check=False)
    except OSError as exc:
        raise HostError("cannot run %s: %s" % (parser, exc)) from exc
    except subprocess.TimeoutExpired as exc:
        raise HostError("%s timed out after %ss" % (parser, timeout)) from exc
    return proc.returncode, proc.stdout, clean_message(proc.stderr.decode("utf-8", "replace"))


def base_args(apparmor_d: str = APPARMOR_D, features_file: Optional[str] = None) -> List[str]:
    """Arguments that make the parser resolve includes in ``apparmor_d`` and use the given features."""
    args = ["--base", apparmor_d, "-I", apparmor_d]
    if features_file:
        args += ["-M", features_file]
    return args


def parser_version(parser: str) -> str:
    """'3.0.8' from ``apparmor_parser --version``."""
    _rc, out, err = run_parser(["--version"], parser)
    match = re.search(r"version\s+(\d+(?:\.\d+)*)", out.decode("utf-8", "replace") + err)
    return match.group(1) if match else ""


def policy_abis(apparmor_d: str = APPARMOR_D) -> List[str]:
    """The ABI files the host ships (``abi/3.0``, ...), numerically sorted."""
    try:
        names = os.listdir(os.path.join(apparmor_d, "abi"))
    except OSError:
        return []
    nums = [n for n in names if re.match(r"^\d+\.\d+$", n)]
    return sorted(nums, key=lambda n: tuple(int(p) for p in n.split(".")))


def host_abi(apparmor_d: str = APPARMOR_D, version: str = "") -> str:
    """The ABI rules should be rendered for: the newest ``abi/N.M`` the host's parser ships.

    Falls back to the parser's major version ('3.0' for 3.x) when the abi/ directory is missing.
    """
    abis = policy_abis(apparmor_d)
    if abis:
        return abis[-1]
    major = version.split(".")[0] if version else "3"
    return "%s.0" % (major or "3")


def policy_features_file(conf: str = PARSER_CONF) -> str:
    """The ``policy-features=`` file set in parser.conf ('' when none)."""
    try:
        with open(conf) as handle:
            for line in handle:
                line = line.strip()
                if line.startswith("policy-features="):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


def validate(path: str, parser: str, apparmor_d: str = APPARMOR_D,
             features_file: Optional[str] = None) -> Optional[str]:
    """Compile ``path`` with ``apparmor_parser -QK`` against the host's includes; None when it compiles,
    else the parser's message."""
    rc, _out, err = run_parser(["-QK"] + base_args(apparmor_d, features_file) + [path], parser)
    if rc == 0:
        return None
    return err or "apparmor_parser exited with %d" % rc


def validate_many(paths: Sequence[str], parser: str, apparmor_d: str = APPARMOR_D,
                  features_file: Optional[str] = None) -> Optional[str]:
    """Compile several files in one parser run (it reports every failing file); None when all compile."""
    rc, _out, err = run_parser(["-QK"] + base_args(apparmor_d, features_file) + list(paths), parser)
    if rc == 0:
        return None
    return err or "apparmor_parser exited with %d" % rc


def profile_names(path: str, parser: str, apparmor_d: str = APPARMOR_D) -> List[str]:
    """Names of the profiles a file defines (``-N``), top-level and children ('a//b')."""
    # read through stdin: given a path, the parser silently skips a file that has a disable/ link
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise HostError("cannot read %s: %s" % (path, exc)) from exc
    rc, out, err = run_parser(["-N"] + base_args(apparmor_d), parser, stdin=data)
    if rc != 0:
        raise HostError(err or "apparmor_parser -N failed on %s" % path)
    return [line for line in out.decode("utf-8", "surrogateescape").splitlines() if line]


def profile_names_many(paths: Sequence[str], parser: str, apparmor_d: str = APPARMOR_D,
                       chunk: int = 200) -> Dict[str, List[str]]:
    """Names of the profiles of many files (``-N``) in one parser run per CHUNK files, per file.

    Why: a parser start costs far more than reading a small file, and Debian 13's apparmor 4.1 ships about
    100 profile files. The parser prints the names
    file after file (``--jobs=1`` keeps that order); a marker file with a profile named by a random nonce
    after each file tells where one file's names end. A file that yields no names while the run failed
    (its parse error) is left out: the caller asks for it alone and gets that file's own error. Files with
    a ``disable/`` link must not be given here (the parser skips them when named by path)."""
    import secrets
    import tempfile

    out: Dict[str, List[str]] = {}
    nonce = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="armada-names-") as tmp:
        for start in range(0, len(paths), chunk):
            part = list(paths[start:start + chunk])
            args = ["-N", "--jobs=1"] + base_args(apparmor_d)
            markers = []
            for i, path in enumerate(part):
                marker = "armada-names-%s-%d" % (nonce, start + i)
                mpath = os.path.join(tmp, "m%d" % (start + i))
                with open(mpath, "w", encoding="ascii") as handle:
                    handle.write("profile %s {\n}\n" % marker)
                markers.append(marker)
                args += [path, mpath]
            rc, stdout, _err = run_parser(args, parser)
            names = stdout.decode("utf-8", "surrogateescape").splitlines()
            current: List[str] = []
            i = 0
            for line in names:
                if i < len(part) and line == markers[i]:
                    if current or rc == 0:
                        out[part[i]] = current
                    current = []
                    i += 1
                elif line:
                    current.append(line)
    return out


def profile_names_text(text: str, parser: str, apparmor_d: str = APPARMOR_D) -> List[str]:
    """Names of the profiles in ``text`` (not yet on disk), via a private temp file outside ``apparmor_d``."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="armada-names-", suffix=".profile")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
        return profile_names(tmp, parser, apparmor_d)
    finally:
        os.unlink(tmp)


def compiled_policy(path: str, parser: str, apparmor_d: str = APPARMOR_D,
                    features_file: Optional[str] = None) -> bytes:
    """The binary policy ``apparmor_parser -S`` compiles from ``path`` (one blob per top-level profile,
    concatenated)."""
    rc, out, err = run_parser(["-QKS"] + base_args(apparmor_d, features_file) + [path], parser)
    if rc != 0:
        raise HostError(err or "apparmor_parser -S failed on %s" % path)
    return out


def loaded_matches(compiled: bytes, kernel: Dict[str, str], single: bool) -> Optional[bool]:
    """Does the blob the kernel holds for a profile equal what the file compiles to?

    The kernel's ``raw_data`` (readable by root) must appear in the compiled output; without it the
    ``raw_sha*`` hash is compared with the whole output, which is only meaningful for a file that
    defines a single top-level profile (the parser loads one blob per profile).  None = cannot tell.
    """
    raw_path = kernel.get("raw_data")
    if raw_path:
        try:
            with open(raw_path, "rb") as handle:
                raw = handle.read()
            if raw:
                return raw in compiled
        except OSError:
            pass
    for key, algo in (("raw_sha256", hashlib.sha256), ("raw_sha1", hashlib.sha1)):
        if key in kernel:
            same = algo(compiled).hexdigest() == kernel[key]
            return True if same else (False if single else None)
    return None


def load(path: str, parser: str, kernel: Dict[str, Any], apparmor_d: str = APPARMOR_D) -> Dict[str, Any]:
    """``apparmor_parser -r`` the file; skipped with the reason when the kernel has no AppArmor."""
    return _kernel_op("-r", path, parser, kernel, apparmor_d)


def unload(path: str, parser: str, kernel: Dict[str, Any], apparmor_d: str = APPARMOR_D) -> Dict[str, Any]:
    """``apparmor_parser -R`` the profiles a file defines; skipped when the kernel has no AppArmor."""
    return _kernel_op("-R", path, parser, kernel, apparmor_d)


def _kernel_op(flag: str, path: str, parser: str, kernel: Dict[str, Any], apparmor_d: str) -> Dict[str, Any]:
    action = "load" if flag == "-r" else "unload"
    if not kernel.get("enabled"):
        return {"action": action, "path": path, "skipped": True, "reason": kernel.get("reason", "")}
    if flag == "-R":
        # through stdin: given a path, the parser skips a file with a disable/ link and would unload nothing
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise HostError("cannot read %s: %s" % (path, exc)) from exc
        rc, _out, err = run_parser([flag, "-K"] + base_args(apparmor_d), parser, stdin=data)
    else:
        rc, _out, err = run_parser([flag, "-K"] + base_args(apparmor_d) + [path], parser)
    if rc != 0:
        low = err.lower()
        if flag == "-R" and ("not found" in low or "doesn't exist" in low or "does not exist" in low):
            return {"action": action, "path": path, "skipped": True, "reason": "not loaded"}
        raise HostError("apparmor_parser %s %s failed: %s" % (flag, path, err))
    return {"action": action, "path": path, "skipped": False}


# ---------------------------------------------------------------- policy files

def profile_files(apparmor_d: str = APPARMOR_D) -> List[str]:
    """Top-level files the parser would load from ``apparmor_d`` (regular files, skip rules applied)."""
    try:
        names = sorted(os.listdir(apparmor_d))
    except OSError:
        return []
    return [n for n in names if not is_skippable_name(n) and os.path.isfile(os.path.join(apparmor_d, n))]


def link_names(apparmor_d: str, which: str) -> List[str]:
    """Basenames present in ``disable/`` or ``force-complain/``."""
    try:
        return sorted(n for n in os.listdir(os.path.join(apparmor_d, which)) if not is_skippable_name(n))
    except OSError:
        return []


def mode_from_flags(flags: Sequence[str]) -> str:
    """The mode a header's flags declare (enforce when none); audit is reported as 'audit'."""
    for flag in ("kill", "unconfined", "prompt", "default_allow", "complain"):
        if flag in flags:
            return flag
    if "audit" in flags:
        return "audit"
    return "enforce"


def kernel_mode_for(mode: str) -> str:
    """The mode the kernel lists for a declared file mode (audit profiles are enforced)."""
    return {"audit": "enforce", "default_allow": "complain", "prompt": "prompt"}.get(mode, mode)


def package_owner(path: str) -> str:
    """The Debian package shipping ``path`` (``dpkg -S``), '' when none or dpkg is absent."""
    dpkg = shutil.which("dpkg")
    if not dpkg:
        return ""
    try:
        proc = subprocess.run([dpkg, "-S", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if proc.returncode != 0:
        return ""
    line = proc.stdout.decode("utf-8", "replace").splitlines()[0] if proc.stdout else ""
    pkg = line.split(":", 1)[0].strip()
    return pkg.split(",")[0].strip()


def sha256_file(path: str) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_flags(path: str, parser: str, apparmor_d: str = APPARMOR_D,
               names: Optional[List[str]] = None) -> Dict[str, List[str]]:
    """Per top-level profile a file defines (names from ``apparmor_parser -N``, or NAMES when the caller
    already has them from profile_names_many), its header flags (from the shared profile model, which keeps
    the text's own spelling)."""
    from ansible_collections.armada.apparmor.plugins.module_utils import profile_model

    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        text = handle.read()
    out: Dict[str, List[str]] = {}
    for name in profile_names(path, parser, apparmor_d) if names is None else names:
        if "//" not in name:
            out[name] = list(profile_model.get_profile_flags(text, name))
    return out


def status(apparmor_d: str = APPARMOR_D, securityfs: str = SECURITYFS, parser: Optional[str] = None,
           features_file: Optional[str] = None, check_drift: bool = True,
           module_param: str = MODULE_ENABLED, programs: Sequence[str] = (),
           proc: str = PROC) -> Dict[str, Any]:
    """Everything the ``status`` module reports: kernel, parser, loaded profiles, files, drift, processes."""
    kernel = kernel_state(securityfs, module_param)
    result: Dict[str, Any] = {"kernel": kernel}
    parser_path = ""
    try:
        parser_path = find_parser(parser)
        version = parser_version(parser_path)
        result["parser"] = {"path": parser_path, "version": version, "available": True}
    except HostError as exc:
        version = ""
        result["parser"] = {"path": "", "version": "", "available": False, "reason": str(exc)}
    result["abi"] = {"supported": policy_abis(apparmor_d), "render": host_abi(apparmor_d, version),
                     "kernel_features": os.path.isdir(os.path.join(securityfs, "features")),
                     "policy_features_file": features_file or policy_features_file()}
    loaded = loaded_profiles(securityfs) if kernel["enabled"] else {}
    result["loaded"] = loaded
    disabled = set(link_names(apparmor_d, "disable"))
    forced = set(link_names(apparmor_d, "force-complain"))
    files: Dict[str, Any] = {}
    hashes = kernel_policy_hashes(securityfs) if kernel["enabled"] and check_drift else {}
    drift: Dict[str, List[Any]] = {"not_loaded": [], "mode_mismatch": [], "content": [], "loaded_without_file": [],
                                   "errors": []}
    defined = set()
    names = profile_files(apparmor_d)
    batch = [os.path.join(apparmor_d, n) for n in names if n not in disabled]
    known = profile_names_many(batch, parser_path, apparmor_d) if parser_path and batch else {}
    for name in names:
        path = os.path.join(apparmor_d, name)
        entry: Dict[str, Any] = {
            "path": path, "sha256": sha256_file(path), "mtime": _mtime(path), "disabled": name in disabled,
            "force_complain": name in forced, "profiles": {}
        }
        try:
            flags = file_flags(path, parser_path, apparmor_d, known.get(path))
        except Exception as exc:  # a file the model cannot read is reported, not fatal
            flags = {}
            entry["error"] = "cannot parse: %s" % exc
            drift["errors"].append({"path": path, "error": entry["error"]})
        for pname, pflags in flags.items():
            mode = mode_from_flags(pflags)
            if name in disabled:
                mode = "disabled"
            elif name in forced and mode == "enforce":
                mode = "complain"
            entry["profiles"][pname] = {"flags": pflags, "mode": mode}
            defined.add(pname)
            if not kernel["enabled"]:
                continue
            if mode == "disabled":
                if pname in loaded:
                    drift["mode_mismatch"].append({"profile": pname, "file": path, "declared": mode,
                                                   "loaded": loaded[pname]})
                continue
            if pname not in loaded:
                drift["not_loaded"].append({"profile": pname, "file": path})
            elif loaded[pname] != kernel_mode_for(mode):
                drift["mode_mismatch"].append({"profile": pname, "file": path, "declared": mode,
                                               "loaded": loaded[pname]})
        if hashes and parser_path and not entry["disabled"]:
            _content_drift(path, entry, hashes, parser_path, apparmor_d, features_file, drift)
        files[name] = entry
    for pname in sorted(loaded):
        if "//" not in pname and pname not in defined:
            drift["loaded_without_file"].append(pname)
    result["files"] = files
    result["disable_links"] = sorted(disabled)
    result["force_complain_links"] = sorted(forced)
    if not kernel["enabled"]:
        result["drift_checked"] = False
        result["drift_reason"] = kernel["reason"]
    elif not hashes:
        result["drift_checked"] = False
        result["drift_reason"] = "the kernel exports no policy hashes (apparmor.export_binary/hash disabled)"
    else:
        result["drift_checked"] = True
        result["drift_reason"] = ""
    result["drift"] = drift
    result["drifted"] = any(drift[k] for k in ("not_loaded", "mode_mismatch", "content"))
    result["processes"] = program_processes(programs, proc)
    return result


def _mtime(path: str) -> Optional[float]:
    """Last modification of a profile file (epoch seconds), or None when it cannot be read."""
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _content_drift(path: str, entry: Dict[str, Any], hashes: Dict[str, Dict[str, str]], parser: str,
                   apparmor_d: str, features_file: Optional[str], drift: Dict[str, List[Any]]) -> None:
    """Compare the compiled file with the blob the kernel holds for each of its loaded profiles."""
    names = [n for n in entry["profiles"] if n in hashes]
    if not names:
        return
    try:
        compiled = compiled_policy(path, parser, apparmor_d, features_file)
    except HostError as exc:
        drift["errors"].append({"path": path, "error": str(exc)})
        return
    single = len(entry["profiles"]) == 1
    for pname in names:
        same = loaded_matches(compiled, hashes[pname], single)
        entry["profiles"][pname]["loaded_matches_file"] = same
        if same is False:
            drift["content"].append({"profile": pname, "file": path})
