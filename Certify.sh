#!/usr/bin/env bash
# The certified release's privacy-utility frontier (main_proposed.py --application).
# For each setting: the releases at epsilon 0.1, 1, 10, 100 (sigma from the analytic Gaussian
# mechanism at the default delta) and at GRID log-spaced values of --std from 1e-4 up to (not
# including) the sigma certified at epsilon 1; each release is drawn NOISE_SEEDS times, and every draw is attacked
# with LiRA on the forget set (shadows trained once per setting) and MIA-U (LR, direct_diff).
# tools/frontier.py then writes one table (Markdown + CSV) and one figure per setting.
# Settings: MNIST logistic (paper flags, m = 50) and the Wine MLP (Wine.sh flags, m = 7).
# Overrides: NOISE_SEEDS=K (3), GRID=G sigmas (6), EPSILONS="...", SHADOWS (16), SETTINGS.
# QUICK=1: the Wine MLP only, n=80, 5 epochs, m=8, 2 draws, sigmas 1e-4 and sigma(epsilon 1), 4 shadows.
#
# Beside it, certified removal (main_CR.py, Guo et al. 2020; a certificate that holds): for each
# CR setting, the Newton and the Hessian-free removal steps at CR_EPSILONS (0.5 1 2 5 10) with
# delta 1e-5 and the declared budget CR_BUDGET (1: sigma_b = c(delta) CR_BUDGET / epsilon), each
# release attacked with MIA-U (LR, direct_diff; CR_LIRA=1 adds LiRA with SHADOWS shadows);
# tools/cr_frontier.py writes one table and one figure over the settings.
# CR settings (CR_SETTINGS): mnist_raw, mnist_unit (MNIST logistic, paper flags, m = 10, raw and
# unit-norm inputs), mnist_raw_m50, mnist_unit_m50, fmnist (Fashion-MNIST logistic, paper flags).
# CR_REPAIR=K adds --repair K (result files tagged -repairK).
# PARTS="proposed cr" (default both). QUICK=1: CR on Wine logistic with n=80, 3 epochs, m=6,
# epsilon 1 only.
SWEEP=Certify
source "$(dirname "$0")/sweeps/common.sh"

K=${NOISE_SEEDS:-3}; GRID=${GRID:-6}; EPSILONS=${EPSILONS:-0.1 1 10 100}; SHADOWS=${SHADOWS:-16}
SETTINGS=${SETTINGS:-mnist_logistic wine_mlp}
PARTS=${PARTS:-proposed cr}
CR_EPSILONS=${CR_EPSILONS:-0.5 1 2 5 10}; CR_BUDGET=${CR_BUDGET:-1}; CR_LIRA=${CR_LIRA:-0}
CR_SETTINGS=${CR_SETTINGS:-mnist_raw mnist_unit mnist_raw_m50 mnist_unit_m50 fmnist}
CR_REMOVALS=${CR_REMOVALS:-newton hf}; CR_REPAIR=${CR_REPAIR:-0}
REPAIR_TAG=""; REPAIR_FLAGS=()
if [ "$CR_REPAIR" != "0" ]; then REPAIR_TAG="-repair$CR_REPAIR"; REPAIR_FLAGS=(--repair "$CR_REPAIR"); fi
if [ "$QUICK" = "1" ]; then K=2; GRID=1; EPSILONS="1"; SHADOWS=4; SETTINGS="wine_mlp"; CR_EPSILONS="1"; CR_SETTINGS="quick"; fi
case " $EPSILONS " in *" 1 "*) ;; *) EPSILONS="$EPSILONS 1" ;; esac    # the grid tops out at sigma(epsilon 1)

flags() {
    case "$1" in
        mnist_logistic) echo "--model logistic --dataset mnist --num_dataset 1000 --batch_size 32 --epochs 15 --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.5 --seed 42 --num_forget 50" ;;
        wine_mlp)
            if [ "$QUICK" = "1" ]; then
                echo "--model mlp --dataset wine --num_dataset 80 --batch_size 32 --epochs 5 --lr 0.01 --lr_decay 0.9995 --clip 10 --regularization 0.005 --seed 42 --num_forget 8"
            else
                echo "--model mlp --dataset wine --num_dataset 142 --batch_size 64 --epochs 40 --lr 0.01 --lr_decay 0.9995 --clip 10 --regularization 0.005 --seed 42 --num_forget 7"
            fi ;;
        *) echo "Certify.sh: unknown setting $1 (mnist_logistic, wine_mlp)" >&2; exit 2 ;;
    esac
}

# `capture OUT script FLAGS...`: run the script with --json into OUT (atomically); skipped
# when OUT exists and was written by the same command line.
capture() {
    local out=$1; shift
    common_flags
    local cmd
    cmd=$(printf '%q ' python3 "$@" "${COMMON[@]}" --json)
    if [ -f "$out" ] && [ "$(cat "$out.cmd" 2>/dev/null)" = "$cmd" ]; then
        echo "cached: $cmd" >&2
        return 0
    fi
    echo "+ $cmd" >&2
    mkdir -p "$(dirname "$out")"
    PARTIAL="$out.tmp"
    if ! py "$@" "${COMMON[@]}" --json >"$out.tmp"; then
        rm -f "$out.tmp"
        PARTIAL=""
        echo "sweep $SWEEP stopped: this command failed: $cmd" >&2
        exit 1
    fi
    printf '%s' "$cmd" >"$out.cmd"
    mv "$out.tmp" "$out"
    PARTIAL=""
}

# `release DIR TAG FLAGS...`: one certified release, its K draws, and the attacks on each draw
release() {
    local dir=$1 tag=$2; shift 2
    capture "$dir/$tag-proposed.json" main_proposed.py "$@" --application --noise_seeds "$K"
    for ((i = 0; i < K; i++)); do
        capture "$dir/$tag-lira-$i.json" main_MIAL.py "$@" --noise_seeds "$K" --noise_seed "$i" --n_shadows "$SHADOWS"
        capture "$dir/$tag-miau-$i.json" main_MIAU.py "$@" --noise_seeds "$K" --noise_seed "$i" --attack_model LR --features direct_diff
    done
}

# `cr_flags SETTING`: the flags of a certified-removal setting
cr_flags() {
    local paper="--model logistic --num_dataset 1000 --batch_size 32 --epochs 15 --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.5 --seed 42 --delta 1e-5"
    case "$1" in
        mnist_raw) echo "$paper --dataset mnist --num_forget 10" ;;
        mnist_unit) echo "$paper --dataset mnist --num_forget 10 --unit_norm" ;;
        mnist_raw_m50) echo "$paper --dataset mnist --num_forget 50" ;;
        mnist_unit_m50) echo "$paper --dataset mnist --num_forget 50 --unit_norm" ;;
        fmnist) echo "$paper --dataset fashion-mnist --num_forget 10" ;;
        quick) echo "--model logistic --dataset wine --num_dataset 80 --batch_size 16 --epochs 3 --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.05 --seed 42 --delta 1e-5 --num_forget 6" ;;
        *) echo "Certify.sh: unknown CR setting $1 (mnist_raw, mnist_unit, mnist_raw_m50, mnist_unit_m50, fmnist)" >&2; exit 2 ;;
    esac
}

case " $PARTS " in *" cr "*)
for setting in $CR_SETTINGS; do
    F=$(cr_flags "$setting")
    DIR="$RESULTS_DIR/cr/$setting"
    # shellcheck disable=SC2086
    capture "$DIR/retrain.json" main_retrain.py $F
    # shellcheck disable=SC2086
    capture "$DIR/eva.json" main_eva.py $F
    for eps in $CR_EPSILONS; do
        for removal in $CR_REMOVALS; do
            # shellcheck disable=SC2086
            local_flags=(--epsilon "$eps" --cr_budget "$CR_BUDGET" --removal "$removal" ${REPAIR_FLAGS[@]+"${REPAIR_FLAGS[@]}"})
            tag="eps$eps-$removal$REPAIR_TAG"
            # shellcheck disable=SC2086
            capture "$DIR/$tag.json" main_CR.py $F "${local_flags[@]}"
            # shellcheck disable=SC2086
            capture "$DIR/$tag-miau.json" main_MIAU.py $F "${local_flags[@]}" --attack_model LR --features direct_diff
            if [ "$CR_LIRA" = "1" ]; then
                # shellcheck disable=SC2086
                capture "$DIR/$tag-lira.json" main_MIAL.py $F "${local_flags[@]}" --n_shadows "$SHADOWS"
            fi
        done
    done
done
py -m tools.cr_frontier --release_dir "$RESULTS_DIR/cr"
;; esac

case " $PARTS " in *" proposed "*) ;; *) echo "sweep $SWEEP done: $RESULTS_DIR/cr/cr_frontier.*" >&2; exit 0 ;; esac
for setting in $SETTINGS; do
    F=$(flags "$setting")
    DIR="$RESULTS_DIR/$setting"
    # shellcheck disable=SC2086
    run main_retrain.py $F
    for eps in $EPSILONS; do
        # shellcheck disable=SC2086
        release "$DIR" "eps$eps" $F --epsilon "$eps"
    done
    # shellcheck disable=SC2086
    TOP=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['Proposed_noise']['sigma'])" "$DIR/eps1-proposed.json")
    for std in $(python3 -c "import numpy, sys; print(' '.join(f'{s:.3g}' for s in numpy.geomspace(1e-4, float(sys.argv[1]), int(sys.argv[2]) + 1)[:-1]))" "$TOP" "$GRID"); do
        # shellcheck disable=SC2086
        release "$DIR" "std$std" $F --std "$std"
    done
    py -m tools.frontier --release_dir "$DIR" --title "$setting"
done
echo "sweep $SWEEP done: tables and figures in $RESULTS_DIR/<setting>/frontier.*" >&2
