#!/usr/bin/env bash
# ansible-test's validate-modules sanity check, run offline.
# ansible-test wants a real (not symlinked) ansible_collections/NS/NAME tree under git, and it bootstraps
# pip in its sanity venv with a get-pip.py fetched from a host that is unreachable here; we place an
# offline stand-in (scripts/get_pip_offline.py) in its cache. Everything else comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}   # scripts/core-matrix.sh runs it with each ansible-core's virtualenv
PY=$ROOT/$VENV/bin/python
TREE=$ROOT/build/sanity-${VENV#.}/ansible_collections/armada/apparmor
pip_version=$(grep -ohP "^\s+pip='\K[0-9.]+" "$("$PY" -c 'import ansible_test,os;print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1)
[ -n "$pip_version" ] || { echo "validate-modules: cannot tell which pip ansible-test bootstraps" >&2; exit 1; }
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cmp -s scripts/get_pip_offline.py "$cache" 2>/dev/null || cp scripts/get_pip_offline.py "$cache"

rm -rf "$TREE" && mkdir -p "$TREE"
# The files a commit would hold, as they are in the working tree.
git ls-files -z --cached --others --exclude-standard | \
  (cd "$ROOT" && xargs -0 -I{} sh -c '[ -e "{}" ] && printf "%s\0" "{}"' ) | \
  tar --null -T - -cf - | tar -xf - -C "$TREE"
(cd "$TREE" && git init -q . && git add -A >/dev/null)
cd "$TREE"
"$ROOT/$VENV/bin/ansible-test" sanity --test validate-modules --python "$("$PY" -c 'import sys;print("%d.%d"%sys.version_info[:2])')" --local --color no
