"""Small synthetic datasets in the standard file layouts of CIFAR-10, CelebA and LFW.

Used by the tests and by the quick modes of the ResNet-18 sweeps on machines without the
real files. The images are random colours: models trained on them learn nothing useful;
they only exercise the loaders and the pipeline.

    python3 -m tools.synthetic DIR      # writes DIR/cifar-10-batches-py, DIR/celeba, DIR/lfw
"""
import os
import pickle
import sys

import numpy as np
from PIL import Image


def write_cifar(root, per_batch=6, seed=0):
    """Five train batches and a test batch of ``per_batch`` images each; returns the raw dicts."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    raw = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        raw[name] = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                     "labels": rng.integers(0, 10, per_batch).tolist()}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(raw[name], f, protocol=2)
    return raw


def write_jpg(path, color, size=(20, 24)):
    Image.new("RGB", size, tuple(int(c) for c in color)).save(path)


def write_celeba(root, male, partition, seed=0):
    """CelebA layout with one image per entry; ``male`` in {1, -1}, ``partition`` in {0, 1, 2}."""
    folder = os.path.join(root, "celeba")
    os.makedirs(os.path.join(folder, "img_align_celeba"), exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"{i + 1:06d}.jpg" for i in range(len(male))]
    for nm in names:
        write_jpg(os.path.join(folder, "img_align_celeba", nm), rng.integers(0, 256, 3))
    with open(os.path.join(folder, "list_attr_celeba.txt"), "w") as f:
        f.write(f"{len(names)}\n5_o_Clock_Shadow Bald Male Young\n")
        f.writelines(f"{nm}  -1  1 {m:2d}  1\n" for nm, m in zip(names, male))
    with open(os.path.join(folder, "list_eval_partition.txt"), "w") as f:
        f.writelines(f"{nm} {p}\n" for nm, p in zip(names, partition))
    return names


def write_lfw(root, counts, seed=0):
    """LFW layout: lfw/<Person>/<Person>_0001.jpg ..., ``counts`` = {person: number of images}."""
    rng = np.random.default_rng(seed)
    for person, count in counts.items():
        folder = os.path.join(root, "lfw", person)
        os.makedirs(folder, exist_ok=True)
        for k in range(count):
            write_jpg(os.path.join(folder, f"{person}_{k + 1:04d}.jpg"), rng.integers(0, 256, 3), size=(8, 8))


def write_all(root, size=200, seed=0):
    """All three layouts with about ``size`` training images each."""
    rng = np.random.default_rng(seed)
    write_cifar(root, per_batch=size // 5, seed=seed)
    n = size * 5 // 4
    write_celeba(root, male=rng.choice([1, -1], n).tolist(),
                 partition=rng.choice([0, 0, 0, 0, 2], n).tolist(), seed=seed)
    write_lfw(root, {f"Person_{k:02d}": 30 + k for k in range(max(2, n // 35))}, seed=seed)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m tools.synthetic DIR")
    write_all(sys.argv[1])
    print(f"synthetic CIFAR-10, CelebA and LFW files written under {sys.argv[1]}", file=sys.stderr)
