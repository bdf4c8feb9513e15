#!/usr/bin/env bash
# U-LiRA (in the spirit of Hayes et al. 2024): can an attacker with K shadow models tell each
# method's unlearned models from retrained ones? MNIST logistic (m=50) and MNIST cnn (m=10),
# seed 42, 16 shadows; rows Original (upper reference), Retrain (independent retrain: the
# null, AUC ~0.5) and Proposed in replay mode (one replay per shadow).
# SHADOWS=K overrides the number of shadows; VARIANTS="paper authors ggn+kappa=0.1 ..." runs
# Proposed in each variant (labels as in sweeps/common.sh; the Original and Retrain shadows are
# cached and shared); CNN=0 skips the
# cnn (about 16 x 3 trainings of it). QUICK=1: Wine logistic, full-batch, 30 epochs, m=40,
# 6 shadows (about 30 s; tests/test_ulira.py runs it).
SWEEP=ULIRA
source "$(dirname "$0")/sweeps/common.sh"

SHADOWS=${SHADOWS:-16}; VARIANTS=${VARIANTS:-paper}; CNN=${CNN:-1}
if [ "$QUICK" = "1" ]; then
    SETTINGS=("--model logistic --dataset wine --num_dataset 142 --batch_size 128 --epochs 30 --lr 4 --lr_decay 0.9995 --clip 10 --regularization 1e-4 --num_forget 40")
    SHADOWS=6
else
    mapfile -t L < <(mnist_logistic_flags 1000 15)
    mapfile -t C < <(mnist_cnn_flags 1000 20)
    SETTINGS=("${L[*]} --num_forget 50")
    [ "$CNN" = "1" ] && SETTINGS+=("${C[*]} --num_forget 10")
fi

for setting in "${SETTINGS[@]}"; do
    read -r -a F <<< "$setting"
    for label in $VARIANTS; do
        vflags=(); mapfile -t vflags < <(variant_flags "$label") && wait $! || exit 2
        run main_ULIRA.py "${F[@]}" --seed 42 --n_shadows "$SHADOWS" ${vflags[@]+"${vflags[@]}"}
    done
done
for txt in "$RESULTS_DIR"/ULIRA-*.txt; do echo "== $txt" >&2; cat "$txt" >&2; done
echo "sweep $SWEEP done: tables and figures in $RESULTS_DIR" >&2
