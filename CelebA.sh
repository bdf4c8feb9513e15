#!/usr/bin/env bash
# CelebA (attribute Male), ResNet-18 (n=10,000, batch 64, 5 epochs, lr 0.01, decay 0.9995,
# clip 10, lambda 1e-2, m=50, seed 42). Needs a GPU and the CelebA files; QUICK=1 runs anywhere.
SWEEP=CelebA DATASET=celeba
N=10000 BATCH=64 EPOCHS=5 LR=0.01 DECAY=0.9995 CLIP=10 LAMBDA=1e-2 M=50 SEEDS="42"
source "$(dirname "$0")/sweeps/resnet.sh"
