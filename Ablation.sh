#!/usr/bin/env bash
# Ablations on MNIST (logistic and CNN, paper flags otherwise, seed 42, m=100): distance to
# the retrained model against the step size (lr 0.001..0.5) and against the number of
# epochs (1..1000 for logistic regression, 1..50 for the CNN). Results in
# results/Ablation-lr and results/Ablation-epochs. QUICK=1: n=100, two values of each.
# LRS=, EPOCHS_LOG=, EPOCHS_CNN=, MODELS= override the grid.
SWEEP=Ablation
source "$(dirname "$0")/sweeps/common.sh"
BASE_RESULTS=$RESULTS_DIR

N=1000; M=100; SEED=42
LRS=${LRS:-0.001 0.005 0.01 0.05 0.1 0.5}; EPOCHS_LOG=${EPOCHS_LOG:-1 5 15 50 200 1000}; EPOCHS_CNN=${EPOCHS_CNN:-1 5 20 50}
MODELS=${MODELS:-logistic cnn}
if [ "$QUICK" = "1" ]; then N=100; M=10; LRS="0.01 0.1"; EPOCHS_LOG="1 2"; EPOCHS_CNN="1 2"; fi

# one setting per line of output: flags separated by single spaces (none contains a space)
setting() {  # setting MODEL EPOCHS LR
    local flags
    mapfile -t flags < <("mnist_$1_flags" "$N" "$2" "$3")
    echo "${flags[*]} --seed $SEED --num_forget $M"
}

ablate() {  # ablate <results subfolder> <settings...>
    RESULTS_DIR="$BASE_RESULTS-$1"; shift
    local s F
    for s in "$@"; do
        read -r -a F <<< "$s"
        run main_retrain.py "${F[@]}"
        run main_proposed.py "${F[@]}"
        run main_eva.py "${F[@]}"
    done
}

settings=()
E_LOG=15; E_CNN=20; [ "$QUICK" = "1" ] && E_LOG=1 && E_CNN=1
for model in $MODELS; do
    for lr in $LRS; do
        if [ "$model" = "cnn" ]; then settings+=("$(setting cnn "$E_CNN" "$lr")"); else settings+=("$(setting logistic "$E_LOG" "$lr")"); fi
    done
done
ablate lr "${settings[@]}"
finish_sweep --x lr

settings=()
[[ " $MODELS " == *" logistic "* ]] && for e in $EPOCHS_LOG; do settings+=("$(setting logistic "$e" 0.05)"); done
[[ " $MODELS " == *" cnn "* ]] && for e in $EPOCHS_CNN; do settings+=("$(setting cnn "$e" 0.05)"); done
ablate epochs "${settings[@]}"
finish_sweep --x epochs
