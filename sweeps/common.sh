# Shared by the top-level sweep scripts (MNIST.sh, FMNIST.sh, ...). Source it, do not run it.
#
# Environment overrides (all optional):
#   GPU=-1|0|...      device index passed as --gpu (default -1, the CPU)
#   QUICK=1           tiny settings of the same pipeline (about a minute on 2 CPU cores)
#   DATA_DIR LOG_DIR RESULTS_DIR   directories (default ./data ./log ./results/<sweep>[-quick]);
#                     paths with spaces work
#   EXTRA="--flag v"  appended to every command (split on whitespace)
#   VARIANTS="paper authors ggn+kappa=0.1"   Proposed rows: each label (a --hf_variant value,
#                     'ggn', 'kappa=K', joined by '+') is run by main_proposed.py and shown by
#                     main_eva.py as its own row, 'Proposed[label]' (default: paper only); every
#                     label is checked when this file is sourced, before the first command
#
# `run script.py FLAGS...` runs one step once. A finished step leaves a stamp under
# LOG_DIR/.sweep-stamps listing every file it wrote (utils/common/artifacts.py appends them to
# $HFU_WRITTEN); the step is skipped only while all of them still exist, so deleting
# results/<sweep> or a configuration folder under log/ and rerunning regenerates what is
# missing. The scripts themselves also reuse every cached model, bank and Hessian. The sweep
# stops at the first failing command and prints it; Ctrl-C stops it with one line, and
# rerunning the same command resumes (the interrupted step has no stamp). Identical sweeps may
# run at once: each keeps its own list while a step runs, and the scripts' locks serialise the
# precomputes (the second waits and reuses).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SWEEP=${SWEEP:?set SWEEP before sourcing sweeps/common.sh}
GPU=${GPU:--1}
QUICK=${QUICK:-0}
DATA_DIR=${DATA_DIR:-./data}
LOG_DIR=${LOG_DIR:-./log}
if [ "$QUICK" = "1" ]; then RESULTS_DIR=${RESULTS_DIR:-./results/${SWEEP}-quick}; else RESULTS_DIR=${RESULTS_DIR:-./results/${SWEEP}}; fi
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
STAMPS="$LOG_DIR/.sweep-stamps"
export HFU_OFFLINE=${HFU_OFFLINE:-0}

# The flags every command gets, from the current GPU / DATA_DIR / LOG_DIR / RESULTS_DIR.
common_flags() {
    COMMON=(--gpu "$GPU" --data_dir "$DATA_DIR" --log_dir "$LOG_DIR" --results_dir "$RESULTS_DIR" --quiet
            ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"})
}

# The MNIST paper settings, one flag per line (read them with mapfile -t).
mnist_logistic_flags() {  # N EPOCHS [LR]
    printf '%s\n' --model logistic --dataset mnist --num_dataset "$1" --batch_size 32 --epochs "$2" \
        --lr "${3:-0.05}" --lr_decay 0.995 --clip 5 --regularization 0.5
}
mnist_cnn_flags() {  # N EPOCHS [LR]
    printf '%s\n' --model cnn --dataset mnist --num_dataset "$1" --batch_size 64 --epochs "$2" \
        --lr "${3:-0.05}" --lr_decay 0.995 --clip 10 --regularization 1e-6
}

# A python command in the background, so that Ctrl-C reaches the sweep's trap at once (the
# child ignores SIGINT) and the trap stops the child.
CHILD=""
PARTIAL=""
py() {
    local rc=0
    python3 "$@" & CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

on_interrupt() {
    trap - INT TERM
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
    if [ -n "$PARTIAL" ]; then rm -f "$PARTIAL"; fi
    echo "sweep $SWEEP interrupted; rerun the same command to resume" >&2
    exit 130
}
trap on_interrupt INT TERM

# Every VARIANTS label is checked now, before the first command (one line naming VARIANTS).
read -r -a VARIANT_LABELS <<< "${VARIANTS:-paper}"
py -m utils.common.options --variants ${VARIANT_LABELS[@]+"${VARIANT_LABELS[@]}"} || exit 2

# True when the stamp lists at least one file and every listed file still exists.
outputs_exist() {
    local path listed=0
    [ -f "$1" ] || return 1
    while IFS= read -r path; do
        [ -e "$path" ] || return 1
        listed=1
    done < "$1"
    [ "$listed" = 1 ]
}

run() {
    common_flags
    local cmd key stamp
    cmd=$(printf '%q ' python3 "$@" "${COMMON[@]}")
    cmd=${cmd% }
    key=$(printf '%s' "$cmd" | sha1sum | cut -c1-20)
    stamp="$STAMPS/$key"
    if outputs_exist "$stamp"; then
        echo "cached: $cmd" >&2
        return 0
    fi
    echo "+ $cmd" >&2
    mkdir -p "$STAMPS"
    rm -f "$stamp"
    # one list per sweep process ($$), so identical sweeps run at once never share one; each
    # renames its own complete list onto the stamp (the scripts' locks make the steps themselves safe)
    PARTIAL="$stamp.$$.partial"
    : > "$PARTIAL"
    if ! HFU_WRITTEN="$(cd "$STAMPS" && pwd)/$key.$$.partial" py "$@" "${COMMON[@]}" >/dev/null; then
        rm -f "$PARTIAL"
        PARTIAL=""
        echo "sweep $SWEEP stopped: this command failed: $cmd" >&2
        exit 1
    fi
    # an identical sweep that finished this step first left its list: keep its files listed too
    if [ -f "$stamp" ]; then cat "$stamp" >> "$PARTIAL" 2>/dev/null || true; fi
    sort -u -o "$PARTIAL" "$PARTIAL"
    mv "$PARTIAL" "$stamp"
    PARTIAL=""
}

# The flags of a Proposed row label (VARIANTS), one per line; none for 'paper'
# (parsed by utils.common.options, which refuses an unknown label in one line).
variant_flags() {  # LABEL
    python3 -m utils.common.options "$1"
}

# `run_kind KIND FLAGS...`: `run` the script of each method of KIND (a kind of the method
# table, utils/common/methods.py: second-order, first-order, ...) with FLAGS.
run_kind() {
    local kind=$1 script scripts=()
    shift
    mapfile -t scripts < <(python3 -m utils.common.methods "$kind") && wait $! || exit 2
    for script in ${scripts[@]+"${scripts[@]}"}; do
        run "$script" "$@"
    done
}

# `unlearn_and_evaluate FLAGS...`: Retrain, Proposed for each label of VARIANTS (with
# --application when APPLICATION=1), the second-order methods NU and IJ (unless
# SECOND_ORDER=0), then main_eva for the configuration, with one row per variant.
unlearn_and_evaluate() {
    local cert=() rows=() label vflags
    [ "${APPLICATION:-0}" = "1" ] && cert=(--application)
    run main_retrain.py "$@"
    for label in ${VARIANT_LABELS[@]+"${VARIANT_LABELS[@]}"}; do
        vflags=(); mapfile -t vflags < <(variant_flags "$label") && wait $! || exit 2
        run main_proposed.py "$@" ${vflags[@]+"${vflags[@]}"} ${cert[@]+"${cert[@]}"}
    done
    [ "${SECOND_ORDER:-1}" = "1" ] && run_kind second-order "$@"
    [ "${VARIANT_LABELS[*]}" != "paper" ] && rows=(--proposed_rows "$(IFS=,; echo "${VARIANT_LABELS[*]}")")
    run main_eva.py "$@" ${rows[@]+"${rows[@]}"} ${cert[@]+"${cert[@]}"}
}

# aggregate tables (Markdown + CSV) and figures of everything in RESULTS_DIR; always rerun
finish_sweep() {
    common_flags
    py main_eva.py --aggregate "${COMMON[@]}" >/dev/null
    py -m tools.sweep_figures --results_dir "$RESULTS_DIR" --title "$SWEEP" "$@"
    echo "sweep $SWEEP done: tables and figures in $RESULTS_DIR" >&2
}
