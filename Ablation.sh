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

logistic() { echo "--model logistic --dataset mnist --num_dataset $N --batch_size 32 --lr_decay 0.995 --clip 5 --regularization 0.5 --seed $SEED --num_forget $M $*"; }
cnn() { echo "--model cnn --dataset mnist --num_dataset $N --batch_size 64 --lr_decay 0.995 --clip 10 --regularization 1e-6 --seed $SEED --num_forget $M $*"; }

ablate() {  # ablate <results subfolder> <settings...>
    RESULTS_DIR="$BASE_RESULTS-$1"; shift
    COMMON="--gpu $GPU --data_dir $DATA_DIR --log_dir $LOG_DIR --results_dir $RESULTS_DIR --quiet $EXTRA"
    for F in "$@"; do
        run main_retrain.py $F
        run main_proposed.py $F
        run main_eva.py $F
    done
}

settings=()
E_LOG=15; E_CNN=20; [ "$QUICK" = "1" ] && E_LOG=1 && E_CNN=1
for model in $MODELS; do
    for lr in $LRS; do
        if [ "$model" = "cnn" ]; then settings+=("$(cnn --epochs $E_CNN --lr "$lr")"); else settings+=("$(logistic --epochs $E_LOG --lr "$lr")"); fi
    done
done
ablate lr "${settings[@]}"
finish_sweep --x lr

settings=()
[[ " $MODELS " == *" logistic "* ]] && for e in $EPOCHS_LOG; do settings+=("$(logistic --epochs "$e" --lr 0.05)"); done
[[ " $MODELS " == *" cnn "* ]] && for e in $EPOCHS_CNN; do settings+=("$(cnn --epochs "$e" --lr 0.05)"); done
ablate epochs "${settings[@]}"
finish_sweep --x epochs
