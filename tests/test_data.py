"""Loaders on small synthetic files in the standard layouts, and the seeded subsets."""
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from utils.catalog import DATASETS
from utils.data import load_data, load_splits, seeded_subset
from utils.errors import InputError
from utils.synthetic import write_celeba, write_cifar, write_jpg, write_lfw


def args_for(dataset, data_dir, n, seed=0, rate=0.5):
    return SimpleNamespace(dataset=dataset, data_dir=str(data_dir), num_dataset=n, seed=seed,
                           test_train_rate=rate)


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
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": SimpleNamespace(), "labels": []}, f)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
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


def test_tabular_standardised_on_train_pool():
    train, test, _ = load_splits("wine", "unused")
    X = train.fetch(torch.arange(len(train)))
    assert len(train) == DATASETS["wine"]["train_size"] and len(test) == 178 - 142
    assert torch.allclose(X.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(X.std(0), torch.ones(13), atol=1e-4)


def test_seeded_subsets(tmp_path):
    a = load_data(args_for("wine", tmp_path, 100, seed=3, rate=0.4))
    b = load_data(args_for("wine", tmp_path, 100, seed=3, rate=0.4))
    c = load_data(args_for("wine", tmp_path, 100, seed=4, rate=0.4))
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
