#!/usr/bin/env bash
# The controller side under every other ansible-core we claim (meta/runtime.yml, README "Supported
# platforms"): .venv runs the newest 2.19 with the rest of the suite; each requirements-core-X.Y.txt names
# another ansible-core and the Python it needs (`# python: 3.12`). Its virtualenv .venv-core-X.Y is built once
# and rebuilt only when that file changes (stamp keyed on its hash), like .venv. Under each: the filter and
# module tests through ansible-playbook (tests/unit/plugins: module_defaults groups, --syntax-check of every
# playbook and documented example, role argument specs, the built tarball), and validate-modules with
# tests/sanity/ignore-X.Y.txt.
#   scripts/core-matrix.sh [sanity|tests|all]   (`make lint` runs sanity, `make test` runs tests after lint)
set -euo pipefail
MODE=${1:-all}
case $MODE in sanity|tests|all) ;; *) echo "usage: $0 [sanity|tests|all]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
ROOT=$PWD
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections" ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
# Every controller-side test but the ansible-builder one (the builder does not depend on the ansible-core) and the
# report role's two slow end-to-end tests (the role with webhook and SMTP servers; the page in Chromium), which run
# under 2.19 only: CI has 90 minutes, and the report's engine is plain Python (test_report_engine runs here too).
TESTS=(tests/unit/plugins --ignore=tests/unit/plugins/test_execution_environment.py
       --ignore=tests/unit/plugins/test_report_role.py --ignore=tests/unit/plugins/test_report_browser.py)

interpreter() {  # python X.Y from pyenv, else from PATH
  local v=$1 d
  for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*; do
    [ -x "$d/bin/python" ] && { echo "$d/bin/python"; return 0; }
  done
  command -v "python$v" || { echo "core-matrix: Python $v is needed (pyenv install $v)" >&2; return 1; }
}

for req in requirements-core-*.txt; do
  core=${req#requirements-core-}; core=${core%.txt}
  venv=.venv-core-$core
  stamp=$venv/.stamp-$(sha256sum "$req" | cut -c1-16)
  [ -f "tests/sanity/ignore-$core.txt" ] || { echo "core-matrix: tests/sanity/ignore-$core.txt is missing" >&2; exit 1; }
  if [ ! -f "$stamp" ]; then
    pyver=$(sed -n 's/^# python: *//p' "$req")
    py=$(interpreter "$pyver")
    rm -rf "$venv" && "$py" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -r "$req" && touch "$stamp"
  fi
  echo "== $("$venv/bin/ansible" --version 2>/dev/null | head -1), $("$venv/bin/python" --version)"
  if [ "$MODE" != sanity ]; then
    PATH="$ROOT/$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
  fi
  if [ "$MODE" != tests ]; then
    VENV=$venv scripts/validate_modules.sh
  fi
done
