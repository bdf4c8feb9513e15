#!/usr/bin/env bash
# Quick start: the MNIST logistic-regression paper setting (n=1000, batch 32, 15 epochs,
# m=10) end to end: train, Hessian-free unlearning, exact retrain, comparison table.
# Extra flags (e.g. --gpu 0, --seed 7) are passed to every script.
set -euo pipefail
cd "$(dirname "$0")"
FLAGS="--model logistic --dataset mnist --num_dataset 1000 --batch_size 32 --epochs 15 --lr 0.05
       --lr_decay 0.995 --clip 5 --regularization 0.5 --num_forget 10 --seed 42 --gpu -1 $*"
python3 main_retrain.py $FLAGS
