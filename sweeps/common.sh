# Shared by the top-level sweep scripts (MNIST.sh, FMNIST.sh, ...). Source it, do not run it.
#
# Environment overrides (all optional):
#   GPU=-1|0|...      device index passed as --gpu (default -1, the CPU)
#   QUICK=1           tiny settings of the same pipeline (about a minute on 2 CPU cores)
#   DATA_DIR LOG_DIR RESULTS_DIR   directories (default ./data ./log ./results/<sweep>[-quick])
#   EXTRA="--flag v"  appended to every command
#
# `run script.py FLAGS...` runs one step once: a step that already finished with the same
# command line (and the same LOG_DIR) is skipped, so re-running a finished sweep takes
# seconds; the scripts themselves also reuse every cached model, bank and Hessian. The
# sweep stops at the first failing command and prints it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SWEEP=${SWEEP:?set SWEEP before sourcing sweeps/common.sh}
GPU=${GPU:--1}
QUICK=${QUICK:-0}
DATA_DIR=${DATA_DIR:-./data}
LOG_DIR=${LOG_DIR:-./log}
if [ "$QUICK" = "1" ]; then RESULTS_DIR=${RESULTS_DIR:-./results/${SWEEP}-quick}; else RESULTS_DIR=${RESULTS_DIR:-./results/${SWEEP}}; fi
EXTRA=${EXTRA:-}
STAMPS="$LOG_DIR/.sweep-stamps"
COMMON="--gpu $GPU --data_dir $DATA_DIR --log_dir $LOG_DIR --results_dir $RESULTS_DIR --quiet $EXTRA"
export HFU_OFFLINE=${HFU_OFFLINE:-0}

run() {
    local cmd="python3 $* $COMMON"
    local key
    key=$(printf '%s' "$cmd" | sha1sum | cut -c1-20)
    if [ -f "$STAMPS/$key" ]; then
        echo "cached: $cmd" >&2
        return 0
    fi
    echo "+ $cmd" >&2
    # shellcheck disable=SC2086
    if ! python3 "$@" $COMMON >/dev/null; then
        echo "sweep $SWEEP stopped: this command failed: $cmd" >&2
        exit 1
    fi
    mkdir -p "$STAMPS"
    touch "$STAMPS/$key"
}

# `unlearn_and_evaluate FLAGS...`: Retrain, Proposed (with --application when
# APPLICATION=1), NU and IJ (unless SECOND_ORDER=0), then main_eva for the configuration.
unlearn_and_evaluate() {
    local cert=""
    [ "${APPLICATION:-0}" = "1" ] && cert="--application"
    run main_retrain.py "$@"
    run main_proposed.py "$@" $cert
    if [ "${SECOND_ORDER:-1}" = "1" ]; then
        run main_NU.py "$@"
        run main_IJ.py "$@"
    fi
    run main_eva.py "$@" $cert
}

# aggregate tables (Markdown + CSV) and figures of everything in RESULTS_DIR; always rerun
finish_sweep() {
    python3 main_eva.py --aggregate $COMMON >/dev/null
    python3 -m utils.sweep_figures --results_dir "$RESULTS_DIR" --title "$SWEEP" "$@"
    echo "sweep $SWEEP done: tables and figures in $RESULTS_DIR" >&2
}
