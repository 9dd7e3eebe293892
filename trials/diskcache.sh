#!/bin/sh
# diskcache 5.6.3: its own tests but Django's and the doctests, every @fs and @sqlite call site
# of diskcache/, a check inside the test process after each test (a value file no row names).
set -u
. "$(dirname "$0")/common.sh"
export PATH=$TRIALS/venv-diskcache/bin:$PATH  # python, pytest and dynfault of the project's venv
cd "$TRIALS/src/diskcache-5.6.3" || exit 2
rm -rf "$OUT/diskcache-logs"
dynfault sweep --calls @fs,@sqlite -j 2 --timeout 120 \
  --check-call diskcache_check:after_test \
  --json "$OUT/diskcache.json" --log-dir "$OUT/diskcache-logs" \
  -- python -m pytest -q $X -p no:cacheprovider tests/test_core.py tests/test_fanout.py \
     tests/test_deque.py tests/test_index.py tests/test_recipes.py \
  > "$OUT/diskcache.txt" 2>&1
echo "diskcache: exit $? ($OUT/diskcache.txt)"
