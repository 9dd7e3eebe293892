#!/bin/sh
# filelock 3.16.1: its own lock tests, every @fs call site of src/filelock, a check inside the
# test process after each test (a lock's descriptor left open, a soft lock file left unheld).
set -u
. "$(dirname "$0")/common.sh"
export PATH=$TRIALS/venv-filelock/bin:$PATH  # python, pytest and dynfault of the project's venv
cd "$TRIALS/src/filelock-3.16.1" || exit 2
rm -rf "$OUT/filelock-logs"
dynfault sweep --calls @fs -j 2 --timeout 60 \
  --check-call filelock_check:after_test \
  --json "$OUT/filelock.json" --log-dir "$OUT/filelock-logs" \
  -- python -m pytest -q $X -p no:cacheprovider tests/test_filelock.py tests/test_error.py \
  > "$OUT/filelock.txt" 2>&1
echo "filelock: exit $? ($OUT/filelock.txt)"
