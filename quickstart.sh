#!/usr/bin/env bash
# Quick start: the MNIST logistic-regression paper setting (n=1000, batch 32, 15 epochs,
# m=10, seed 42) end to end: train once, exact retrain, Hessian-free unlearning, the Newton
# step and infinitesimal-jackknife baselines, and the comparison table against Retrain.
# Extra flags (e.g. --gpu 0, --seed 7, --num_forget 50) are passed to every script.
set -euo pipefail
cd "$(dirname "$0")"
FLAGS=(--model logistic --dataset mnist --num_dataset 1000 --batch_size 32 --epochs 15 --lr 0.05
       --lr_decay 0.995 --clip 5 --regularization 0.5 --num_forget 10 --seed 42 --gpu -1 --quiet "$@")
mapfile -t SCRIPTS < <(python3 -m utils.common.methods reference proposed second-order) && wait $!
for script in "${SCRIPTS[@]}"; do
    echo "== python3 $script" >&2
    python3 "$script" "${FLAGS[@]}" > /dev/null
done
echo "== python3 main_eva.py" >&2
python3 main_eva.py "${FLAGS[@]}"
