# ResNet-18 sweep body shared by Cifar.sh, CelebA.sh and LFW.sh. Source it after setting
# SWEEP, DATASET, and the paper's N BATCH EPOCHS LR DECAY CLIP LAMBDA M SEEDS.
#
# A bank of n x d approximators does not fit at this scale (CIFAR: 50,000 x 11.2M floats),
# so Proposed computes approximators for the declared candidates only (--hf_candidates
# forget, as the authors do; the printed precompute and storage cover those rows only).
# Baselines: exact retrain, fine-tuning (15 epochs) and NegGrad (2 epochs); NU and IJ cannot
# run at d = 11.2M. QUICK=1 runs the same pipeline on a few images; where the dataset's files
# are absent it first writes small synthetic files in the standard layout (random images).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ "$QUICK" = "1" ]; then
    N=40; BATCH=20; EPOCHS=1; M=4; SEEDS="42"
    if ! python3 -c "import sys; from utils.common.data import load_splits; load_splits(sys.argv[1], sys.argv[2])" "$DATASET" "$DATA_DIR" 2>/dev/null; then
        DATA_DIR="$LOG_DIR/synthetic-data"
        py -m tools.synthetic "$DATA_DIR"
        echo "QUICK mode: no $DATASET files found; using synthetic files in $DATA_DIR" >&2
    fi
fi

for seed in $SEEDS; do
    F=(--model resnet18 --dataset "$DATASET" --num_dataset "$N" --batch_size "$BATCH" --epochs "$EPOCHS" --lr "$LR" --lr_decay "$DECAY" --clip "$CLIP" --regularization "$LAMBDA" --seed "$seed" --num_forget "$M")
    run main_retrain.py "${F[@]}"
    run main_proposed.py "${F[@]}" --hf_candidates forget
    run_kind first-order "${F[@]}"
    run main_eva.py "${F[@]}" --hf_candidates forget
done
finish_sweep
