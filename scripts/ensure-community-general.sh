#!/usr/bin/env bash
# Install community.general (optional collection of the report role's mail) into DEST for the tests:
# from Galaxy when it answers, else from the `ansible` package on PyPI, which bundles it (pinned below).
# Usage: scripts/ensure-community-general.sh DEST   (DEST/ansible_collections/community/general)
set -euo pipefail
dest="${1:?usage: $0 DEST}"
[ -f "$dest/ansible_collections/community/general/plugins/modules/mail.py" ] && exit 0
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/.venv/bin"
mkdir -p "$dest"
if timeout 120 "$bin/ansible-galaxy" collection install -p "$dest" community.general >/dev/null 2>&1; then
  exit 0
fi
echo "Galaxy unreachable: taking community.general from the ansible package on PyPI" >&2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# ansible 12.x is the community package of ansible-core 2.19 (requirements.txt)
"$bin/pip" download --quiet --no-deps -d "$tmp" "ansible==12.3.0"
"$bin/python" - "$tmp"/ansible-*.whl "$dest" <<'PY'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
prefix = "ansible_collections/community/general/"
with zipfile.ZipFile(whl) as z:
    members = [m for m in z.namelist() if m.startswith(prefix)]
    if not members:
        sys.exit("no community.general in %s" % whl)
    z.extractall(dest, members)
PY
test -f "$dest/ansible_collections/community/general/plugins/modules/mail.py"
