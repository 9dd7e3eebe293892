#!/bin/sh
# Fetch the three projects' sdists into $TRIALS/src and give each a venv with this checkout's
# dynfault (editable), the project itself (editable, so its code is under pytest's rootdir) and
# what its own tests need. Nothing of the projects is kept in this repository.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
TRIALS=${TRIALS:-/work/trials}
PY=${PY:-/root/.pyenv/versions/3.12.1/bin/python}
mkdir -p "$TRIALS/src"
cd "$TRIALS/src"
for spec in filelock==3.16.1 diskcache==5.6.3 sqlitedict==2.1.0; do
  name=${spec%%==*}; version=${spec##*==}
  if [ ! -d "$name-$version" ]; then
    "$PY" -m pip download -q --no-binary :all: --no-deps "$spec"
    tar xzf "$name-$version.tar.gz"
  fi
done
venv() {  # venv NAME SRC EXTRA...
  name=$1; src=$2; shift 2
  [ -x "$TRIALS/venv-$name/bin/python" ] || "$PY" -m venv "$TRIALS/venv-$name"
  "$TRIALS/venv-$name/bin/pip" install -q -e "$HERE" -e "$TRIALS/src/$src" pytest "$@"
}
venv filelock filelock-3.16.1 pytest-asyncio pytest-mock pytest-timeout
venv diskcache diskcache-5.6.3
venv sqlitedict sqlitedict-2.1.0
# sqlitedict's test_autocommit runs first and needs tests/db, which only its later tests make:
# a fresh sdist's suite fails without it.
mkdir -p "$TRIALS/src/sqlitedict-2.1.0/tests/db"
