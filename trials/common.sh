# Sourced by the per-project scripts: where the projects, their venvs and the outputs live.
# $1 (optional) names the output folder under $TRIALS/out (default: main).
TRIALS=${TRIALS:-/work/trials}
HERE=$(cd "$(dirname "$0")" && pwd)
LABEL=${1:-main}
OUT=$TRIALS/out/$LABEL
mkdir -p "$OUT"
export PYTHONPATH=$HERE/checks  # the --check-call modules
# pytest's flags for the projects' suites. Default: the whole suite, as a user runs it (a run's
# later tests show what its first failure hides: a value lost, not only a miss). X=-x stops
# each run at its first failure, as the trial did up to stop 32.
X=${X-}
