#!/bin/sh
# sqlitedict 2.1.0: its own tests (less one that needs a non-root user), every @fs and @sqlite
# call site of sqlitedict.py, a shell check after each run: no temporary database (sqldict*)
# left in the run's TMPDIR. The check clears what it found, so a run is blamed for its own only.
# Where dynfault gives each run and its check a TMPDIR of their own, JOBS=2 is safe; where it
# does not, they all share the one exported here: JOBS=1 (the default).
set -u
. "$(dirname "$0")/common.sh"
export PATH=$TRIALS/venv-sqlitedict/bin:$PATH  # python, pytest and dynfault of the project's venv
cd "$TRIALS/src/sqlitedict-2.1.0" || exit 2
export TMPDIR=$TRIALS/tmp-sqlitedict
rm -rf "$TMPDIR" "$OUT/sqlitedict-logs"; mkdir -p "$TMPDIR"
dynfault sweep --calls @fs,@sqlite -j "${JOBS:-1}" --timeout 30 \
  --check 'left=$(ls "$TMPDIR" | grep "^sqldict"); rm -f "$TMPDIR"/sqldict*; test -z "$left"' \
  --json "$OUT/sqlitedict.json" --log-dir "$OUT/sqlitedict-logs" \
  -- python -m pytest -q $X -p no:cacheprovider tests \
     --deselect tests/test_core.py::SqliteDictTerminateFailTest \
  > "$OUT/sqlitedict.txt" 2>&1
echo "sqlitedict: exit $? ($OUT/sqlitedict.txt)"
