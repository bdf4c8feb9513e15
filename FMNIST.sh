#!/usr/bin/env bash
# Fashion-MNIST, CNN and LeNet-5: Proposed against the retrained model for m = 40..1200
# deletions (n=4000, seed 42). NU and IJ run for the CNN only: LeNet's d = 61,706 makes a
# dense d x d Hessian of 15 GB (SECOND_ORDER=0 skips them; SEEDS=, MS=, MODELS= override the
# grid). QUICK=1: n=200, 1 epoch, m=10. The tables of docs/results.md:
# SECOND_ORDER=0 EXTRA="--hf_mode replay --batch_unlearn" bash FMNIST.sh
SWEEP=FMNIST
source "$(dirname "$0")/sweeps/common.sh"

SEEDS=${SEEDS:-42}; MS=${MS:-40 200 400 800 1200}; MODELS=${MODELS:-cnn lenet}; N=4000; E=30
WITH_SECOND_ORDER=${SECOND_ORDER:-1}
if [ "$QUICK" = "1" ]; then MS="10"; N=200; E=1; fi

for model in $MODELS; do
    for seed in $SEEDS; do
        for m in $MS; do
            F=(--model "$model" --dataset fashion-mnist --num_dataset "$N" --batch_size 256 --epochs "$E" --lr 0.5 --lr_decay 0.995 --clip 0.5 --regularization 1e-6 --seed "$seed" --num_forget "$m")
            SECOND_ORDER=0
            [ "$model" = "cnn" ] && SECOND_ORDER=$WITH_SECOND_ORDER
            unlearn_and_evaluate "${F[@]}"
        done
    done
done
finish_sweep
