#!/usr/bin/env bash
# CIFAR-10, ResNet-18 (n=50,000, batch 256, 40 epochs, lr 0.001, decay 0.99995, clip 10,
# lambda 1e-2, m=50, seed 930). Needs a GPU and the CIFAR-10 files; QUICK=1 runs anywhere.
SWEEP=Cifar DATASET=cifar
N=50000 BATCH=256 EPOCHS=40 LR=0.001 DECAY=0.99995 CLIP=10 LAMBDA=1e-2 M=50 SEEDS="930"
source "$(dirname "$0")/sweeps/resnet.sh"
