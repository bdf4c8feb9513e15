#!/usr/bin/env bash
# Wine (scikit-learn), the authors' MLP setting: n=142, batch 64, 40 epochs, lr 0.01,
# lambda 0.005, decay 0.9995, clip 10, m = 7 and 14, six seeds; Proposed, NU, IJ,
# fine-tuning and NegGrad against the retrained model (BASELINES=0 skips the last two).
# QUICK=1: 2 seeds, m=7, 5 epochs.
SWEEP=Wine
source "$(dirname "$0")/sweeps/common.sh"

SEEDS=${SEEDS:-42 124 3407 114514 5 1}; MS=${MS:-7 14}; E=40
if [ "$QUICK" = "1" ]; then SEEDS="42 1"; MS="7"; E=5; fi

for seed in $SEEDS; do
    for m in $MS; do
        F=(--model mlp --dataset wine --num_dataset 142 --batch_size 64 --epochs "$E" --lr 0.01 --lr_decay 0.9995 --clip 10 --regularization 0.005 --seed "$seed" --num_forget "$m")
        run main_retrain.py "${F[@]}"
        if [ "${BASELINES:-1}" = "1" ]; then
            run_kind first-order "${F[@]}"
        fi
        unlearn_and_evaluate "${F[@]}"
    done
done
finish_sweep
