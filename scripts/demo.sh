#!/bin/sh
# demo.sh BIN - the main job on a built-in default: the model and cluster of
# the Alpa paper's 8-GPU GPT point (GPT-2.6B on one p3.16xlarge node).
set -e
bin=${1:-bin/calpa}
run() { echo "\$ calpa $*"; "$bin" "$@"; echo; }
run model gpt-2.6b --recompute full
run cluster p3.16xlarge
run profile show traces/v100-analytic.json
