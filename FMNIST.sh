#!/usr/bin/env bash
# Fashion-MNIST, CNN and LeNet-5: Proposed (HF) against the retrained model for m = 40..1200
# deletions (n=4000, seed 42). NU and IJ run for the CNN only: LeNet's d = 61,706 makes a
# dense d x d Hessian of 15 GB. QUICK=1: n=200, 1 epoch, m=10.
SWEEP=FMNIST
source "$(dirname "$0")/sweeps/common.sh"

SEEDS="42"; MS="40 200 400 800 1200"; N=4000; E=30
if [ "$QUICK" = "1" ]; then MS="10"; N=200; E=1; fi

for model in cnn lenet; do
    for seed in $SEEDS; do
        for m in $MS; do
            F=(--model "$model" --dataset fashion-mnist --num_dataset "$N" --batch_size 256 --epochs "$E" --lr 0.5 --lr_decay 0.995 --clip 0.5 --regularization 1e-6 --seed "$seed" --num_forget "$m")
            SECOND_ORDER=0
            [ "$model" = "cnn" ] && SECOND_ORDER=1
            unlearn_and_evaluate "${F[@]}"
        done
    done
done
finish_sweep
