"""Where the update role puts the profiles it fetches on the controller: ``./profiles/`` is the whole result.

Why: ``deploy`` pushes ``./profiles/`` to every host, so that directory must hold exactly one fleet-wide copy
of each profile and of the ``local/`` include written for a package profile - and nothing else. A host whose
copy differs from the fleet-wide one gets it under ``.per-host/<host>/`` (``.per-host/<host>/local/`` for an
include), a hidden directory deploy never reads, instead of a ``NAME.host-HOST`` file next to the others
that deploy would push to every host as one more profile.

Every name comes from the controller's own list and every path goes through controller_paths (plain names,
no symlink on the way): what a host prints is data, keyed by the names the controller asked for.
Standard library only, Python 3.8+.
"""
import base64
import binascii
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional

from ansible_collections.armada.apparmor.plugins.module_utils.controller_paths import UnsafeName, check_name

# The hidden directory of per-host copies (deploy skips hidden names).
PER_HOST_DIR = ".per-host"
# Subdirectory of the include files written for package profiles (rules module, target local).
LOCAL_DIR = "local"
# The host prints "NAME<TAB>BASE64" for a profile and "local<TAB>NAME<TAB>BASE64" for its local/ include.
_KINDS = {2: ("profile", "profile file name"), 3: ("local", "local include name")}


def read_texts(lines: Iterable[str], wanted: Iterable[str], host: str) -> Dict[str, Dict[str, str]]:
    """``{"profile": {name: text}, "local": {name: text}}`` from the host's output lines.

    Only the names the controller asked for (``wanted``) are accepted, checked as controller file names;
    anything else fails naming the host and the value (UnsafeName), before anything is written.
    """
    wanted = list(wanted)
    out = {"profile": {}, "local": {}}  # type: Dict[str, Dict[str, str]]
    for line in lines:
        fields = line.split("\t")
        if len(fields) == 3 and fields[0] != LOCAL_DIR:
            raise UnsafeName("%s: unexpected line in the profile texts (%r...); nothing was written"
                             % (host, line[:60]))
        kind, what = _KINDS.get(len(fields), (None, None))
        if kind is None:
            raise UnsafeName("%s: unexpected line in the profile texts (%r...); nothing was written"
                             % (host, line[:60]))
        name = check_name(fields[-2], host, what, allowed=wanted)
        try:
            text = base64.b64decode(fields[-1], validate=True).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            raise UnsafeName("%s: the %s %r came back as invalid base64; nothing was written"
                             % (host, what, name)) from None
        out[kind][name] = text
    return out


def _dest(directory: str, parts: List[str], name: str, host: str, what: str) -> str:
    """``directory/parts.../name`` with no symlink on the way below ``directory`` (nor the file itself)."""
    path = directory
    for part in parts + [name]:
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise UnsafeName("%s: %s is a symlink (to %s); the controller never writes through a symlink in %s - "
                             "remove it and run again" % (host, path, os.readlink(path), directory))
    return path


def layout(texts: Mapping[str, Any], directory: str, order: Optional[Iterable[str]] = None) -> List[Dict[str, Any]]:
    """The files to write: ``[{path, content, hosts, per_host}]``.

    ``texts`` is ``{host: read_texts(...)}`` (hosts without texts may be missing or empty). Per profile (and
    per include) the first host's text, in ``order``, is the fleet-wide copy with every host holding the same
    text; a host holding another text gets its copy under ``.per-host/<host>/``.
    """
    if not directory:
        return []
    hosts = [h for h in (order if order is not None else sorted(texts)) if isinstance(texts.get(h), Mapping)]
    out = []  # type: List[Dict[str, Any]]
    for kind, parts in (("profile", []), ("local", [LOCAL_DIR])):
        by_name = {}  # type: Dict[str, List[Any]]
        for h in hosts:
            for name, text in sorted((texts[h].get(kind) or {}).items()):
                by_name.setdefault(name, []).append((h, text))
        what = "profile file name" if kind == "profile" else "local include name"
        for name in sorted(by_name):
            copies = by_name[name]
            first = copies[0][1]
            out.append({"path": _dest(directory, list(parts), check_name(name, copies[0][0], what),
                                      copies[0][0], what),
                        "content": first, "hosts": [h for h, t in copies if t == first], "per_host": False})
            for h, text in copies:
                if text != first:
                    sub = [PER_HOST_DIR, check_name(h, h, "inventory host name")] + list(parts)
                    out.append({"path": _dest(directory, sub, name, h, what), "content": text, "hosts": [h],
                                "per_host": True})
    return out
