#!/usr/bin/env bash
# LiRA (Carlini et al. 2022) on the MNIST logistic paper setting, m=200, 16 shadow models:
# Original, Retrain, Proposed (with and without certified noise), NU, IJ; online and
# offline LiRA, AUC and TPR at low FPR for U vs non-members and with all training samples IN.
# SHADOWS=K overrides the number of shadows. QUICK=1: Wine MLP, n=80, 5 epochs, m=20, 4 shadows.
SWEEP=MIAL
source "$(dirname "$0")/sweeps/common.sh"

N=1000; E=15; M=200; SEEDS="42"; SHADOWS=${SHADOWS:-16}
if [ "$QUICK" = "1" ]; then N=80; E=5; M=20; SHADOWS=4; fi

for seed in $SEEDS; do
    mapfile -t F < <(mnist_logistic_flags "$N" "$E")
    # quick mode: the Wine MLP (d = 1,091), whose exact Hessians for NU and IJ take milliseconds
    [ "$QUICK" = "1" ] && F=(--model mlp --dataset wine --num_dataset "$N" --batch_size 32 --epochs "$E" --lr 0.01 --lr_decay 0.9995 --clip 10 --regularization 0.005)
    F+=(--seed "$seed" --num_forget "$M")
    APPLICATION=1 unlearn_and_evaluate "${F[@]}"
    run main_MIAL.py "${F[@]}" --application --n_shadows "$SHADOWS"
done
py -m tools.mia_summary --results_dir "$RESULTS_DIR"
finish_sweep
