#!/usr/bin/env bash
# LFW (29 identities with 30..100 images), ResNet-18 (n=984, batch 40, 50 epochs, lr 0.004,
# decay 0.9995, clip 5.5, lambda 1e-2, m=50, seed 42). Needs the LFW files; QUICK=1 runs anywhere.
SWEEP=LFW DATASET=lfw
N=984 BATCH=40 EPOCHS=50 LR=0.004 DECAY=0.9995 CLIP=5.5 LAMBDA=1e-2 M=50 SEEDS="42"
source "$(dirname "$0")/sweeps/resnet.sh"
