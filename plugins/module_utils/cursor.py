# Copyright: armada.apparmor developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named read positions ("cursors") over AppArmor log sources, stored on the managed host.

A cursor remembers, per log source, how far a previous run read, so the next run returns only
new records. Reading never moves a cursor by itself: a read produces a *token* (the new position,
plus a digest of the position it started from) and the position is stored only when the caller
commits it. That way a play that fails after reading loses no events, and check mode can read
without side effects. See docs/cursor.md for the on-disk format and the commit protocol.

Standard library only: this file runs on managed hosts.
"""


import base64
import errno
import fcntl
import hashlib
import json
import os
import re
import time
import zlib
from typing import Any, Dict

from ansible_collections.armada.apparmor.plugins.module_utils import fileops

#: Where cursors live on a host unless the caller names another directory.
DEFAULT_CURSOR_DIR = "/var/lib/armada-apparmor/cursors"
#: Format version of the cursor file and of tokens; bumped on incompatible changes.
VERSION = 1
#: A cursor name is a file name: no path separators, no leading dot, bounded length.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}\Z")
TOKEN_PREFIX = "aac1."


class CursorError(Exception):
    """Any cursor problem the caller must show to the user (bad name, corrupt file, stale token)."""


def check_name(name: str) -> str:
    """Return ``name`` if it is usable as a cursor name, else raise CursorError saying why."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CursorError(
            "invalid cursor name %r: use 1-128 characters from A-Z a-z 0-9 _ . @ + -, "
            "not starting with a dot or dash" % (name,)
        )
    return name


def canonical(sources: Dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a position map, so equal positions always digest the same."""
    return json.dumps(sources, sort_keys=True, separators=(",", ":")).encode("utf-8")


def digest(sources: Dict[str, Any]) -> str:
    """Short digest identifying a position map (used for compare-and-swap commits)."""
    return hashlib.sha256(canonical(sources)).hexdigest()[:32]


def make_token(name: str, base: Dict[str, Any], new: Dict[str, Any]) -> str:
    """Encode a commit token: the new positions and the digest of the positions the read began at.

    The token is opaque to users but self-checking (a sha256 over its payload), so a token that was
    truncated or edited on its way through a play is refused instead of committing garbage.
    """
    payload = {"v": VERSION, "name": name, "base": digest(base), "sources": new, "issued": int(time.time())}
    raw = canonical(payload)
    check = hashlib.sha256(raw).hexdigest()[:16]
    body = base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + check + "." + body


def parse_token(token: str) -> Dict[str, Any]:
    """Decode and verify a token produced by make_token; raise CursorError if it is not intact."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        raise CursorError("not a cursor token (expected it to start with %r)" % TOKEN_PREFIX)
    try:
        check, body = token[len(TOKEN_PREFIX):].split(".", 1)
        body += "=" * (-len(body) % 4)
        raw = zlib.decompress(base64.urlsafe_b64decode(body.encode("ascii")))
        payload = json.loads(raw.decode("utf-8"))
    except (ValueError, zlib.error, UnicodeError, TypeError) as exc:
        raise CursorError("cursor token is damaged: %s" % exc) from None
    if hashlib.sha256(raw).hexdigest()[:16] != check:
        raise CursorError("cursor token is damaged: checksum mismatch")
    if not isinstance(payload, dict) or payload.get("v") != VERSION or not isinstance(payload.get("sources"), dict):
        raise CursorError("cursor token has an unsupported format version")
    return payload


class CursorStore:
    """Cursor files in one directory: ``<directory>/<name>.json``, one JSON object each.

    File content: ``{"version": 1, "name": NAME, "updated": EPOCH, "sources": {KEY: POSITION}}``
    where KEY names a log source (``file:/var/log/audit/audit.log``, ``journal:...``, ``dmesg``)
    and POSITION is that source's own position record (see logsources.py).
    """

    def __init__(self, directory: str = DEFAULT_CURSOR_DIR) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        """File holding cursor ``name``."""
        return os.path.join(self.directory, check_name(name) + ".json")

    def load(self, name: str) -> Dict[str, Any]:
        """Return the stored positions of ``name`` (``{}`` when the cursor does not exist yet).

        A file that exists but cannot be understood is an error: silently starting over would
        return every old record again.
        """
        path = self.path(name)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return {}
            raise CursorError("cannot read cursor %s: %s" % (path, exc.strerror)) from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeError) as exc:
            raise CursorError("cursor file %s is corrupt (%s); remove it to start over" % (path, exc)) from None
        if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("sources"), dict):
            raise CursorError("cursor file %s has an unknown format; remove it to start over" % path)
        return data["sources"]

    def exists(self, name: str) -> bool:
        """True when cursor ``name`` has been committed at least once."""
        return os.path.exists(self.path(name))

    def save(self, name: str, sources: Dict[str, Any]) -> None:
        """Store ``sources`` as the positions of ``name`` atomically (creates the directory 0700)."""
        path = self.path(name)
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        doc = {"version": VERSION, "name": name, "updated": int(time.time()), "sources": sources}
        try:
            fileops.atomic_write(path, json.dumps(doc, sort_keys=True, indent=1).encode("utf-8") + b"\n", mode=0o600)
        except fileops.FileOpError as exc:
            raise CursorError("cannot write cursor %s: %s" % (path, exc)) from None

    def _lock(self, name: str) -> int:
        """Take an exclusive lock for ``name`` so two concurrent commits cannot interleave."""
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.directory, "." + check_name(name) + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def commit(self, name: str, token: str, check_mode: bool = False, force: bool = False) -> Dict[str, Any]:
        """Store the positions carried by ``token`` as cursor ``name`` (compare-and-swap).

        The token records a digest of the positions its read started from. If the stored cursor
        has moved since (another run committed in between), committing would skip or repeat
        records, so it is refused unless ``force``. Committing the same token twice is a no-op.
        Returns ``{"changed": bool, "previous": digest, "current": digest}``.
        """
        payload = parse_token(token)
        check_name(name)
        if payload.get("name") != name:
            raise CursorError("token was issued for cursor %r, not %r" % (payload.get("name"), name))
        new = payload["sources"]
        fd = None if check_mode else self._lock(name)
        try:
            current = self.load(name)
            cur_digest = digest(current)
            new_digest = digest(new)
            if cur_digest == new_digest:
                return {"changed": False, "previous": cur_digest, "current": new_digest}
            if cur_digest != payload["base"] and not force:
                raise CursorError(
                    "cursor %r moved since this token was issued (another run committed); "
                    "read again, or commit with force to overwrite" % name
                )
            merged = dict(current)
            merged.update(new)
            if not check_mode:
                self.save(name, merged)
            return {"changed": True, "previous": cur_digest, "current": digest(merged)}
        finally:
            if fd is not None:
                os.close(fd)
