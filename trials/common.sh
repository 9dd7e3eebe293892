# Sourced by the per-project scripts: where the projects, their venvs and the outputs live.
# $1 (optional) names the output folder under $TRIALS/out (default: main).
TRIALS=${TRIALS:-/work/trials}
HERE=$(cd "$(dirname "$0")" && pwd)
LABEL=${1:-main}
OUT=$TRIALS/out/$LABEL
mkdir -p "$OUT"
export PYTHONPATH=$HERE/checks  # the --check-call modules
