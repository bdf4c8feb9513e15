#!/usr/bin/env bash
# MIA-U (Chen et al. 2021) on the MNIST logistic paper setting, m=50: every feature
# construction with the logistic-regression and MLP attacks, against Retrain, Proposed,
# Proposed with certified noise, NU and IJ. QUICK=1: Wine MLP, n=80, 5 epochs, m=10, LR attack.
SWEEP=MIAU
source "$(dirname "$0")/sweeps/common.sh"

N=1000; E=15; M=50; SEEDS="42"; ATTACKS=${ATTACKS:-LR MLP}
FEATURES="direct_diff sorted_diff direct_concat sorted_concat l2_distance"
if [ "$QUICK" = "1" ]; then N=80; E=5; M=10; ATTACKS="LR"; FEATURES="direct_diff sorted_diff"; fi

for seed in $SEEDS; do
    mapfile -t F < <(mnist_logistic_flags "$N" "$E")
    # quick mode: the Wine MLP (d = 1,091), whose exact Hessians for NU and IJ take milliseconds
    [ "$QUICK" = "1" ] && F=(--model mlp --dataset wine --num_dataset "$N" --batch_size 32 --epochs "$E" --lr 0.01 --lr_decay 0.9995 --clip 10 --regularization 0.005)
    F+=(--seed "$seed" --num_forget "$M")
    APPLICATION=1 unlearn_and_evaluate "${F[@]}"
    for attack in $ATTACKS; do
        for feature in $FEATURES; do
            run main_MIAU.py "${F[@]}" --attack_model "$attack" --features "$feature"
        done
    done
done
py -m tools.mia_summary --results_dir "$RESULTS_DIR"
finish_sweep
