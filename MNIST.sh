#!/usr/bin/env bash
# MNIST, convex (logistic regression) and non-convex (CNN): distance to the retrained model,
# accuracy, unlearning and precompute time of Proposed (HF), NU and IJ for m = 10..300
# deletions over 7 seeds (SEEDS=, MS=, MODELS=logistic|cnn override the grid). QUICK=1: n=100, 2 epochs, 2 seeds, m=5, and NU/IJ for the
# logistic model only (the CNN's exact 21,840 x 21,840 Hessian takes minutes).
SWEEP=MNIST
source "$(dirname "$0")/sweeps/common.sh"

SEEDS=${SEEDS:-42 930 124 114514 3407 5 1}; MS=${MS:-10 50 100 200 300}; MODELS=${MODELS:-logistic cnn}
N=1000; E_LOG=15; E_CNN=20
if [ "$QUICK" = "1" ]; then SEEDS="42 1"; MS="5"; N=100; E_LOG=2; E_CNN=1; fi

LOGISTIC="--model logistic --dataset mnist --num_dataset $N --batch_size 32 --epochs $E_LOG --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.5"
CNN="--model cnn --dataset mnist --num_dataset $N --batch_size 64 --epochs $E_CNN --lr 0.05 --lr_decay 0.995 --clip 10 --regularization 1e-6"

for model in $MODELS; do
    setting=$LOGISTIC; [ "$model" = "cnn" ] && setting=$CNN
    for seed in $SEEDS; do
        for m in $MS; do
            F="$setting --seed $seed --num_forget $m"
            SECOND_ORDER=1
            [ "$QUICK" = "1" ] && [ "$model" = "cnn" ] && SECOND_ORDER=0
            unlearn_and_evaluate $F
        done
    done
done
finish_sweep
