"""Model zoo: parameter counts of the SPEC and forward shapes."""
import pytest
import torch

from models import build_model
from utils.functional import FlatModel
from utils.options import InputError


@pytest.mark.parametrize("name, dataset, count", [
    ("logistic", "mnist", 7850), ("cnn", "mnist", 21840), ("lenet", "mnist", 61706), ("mlp", "wine", 1091),
])
def test_parameter_counts(name, dataset, count):
    assert FlatModel(build_model(name, dataset)).d == count


@pytest.mark.parametrize("name, dataset, shape, classes", [
    ("cnn", "cifar", (3, 32, 32), 10), ("lenet", "fashion-mnist", (1, 28, 28), 10),
    ("mlp", "cancer", (30,), 2), ("resnet18", "celeba", (3, 64, 64), 2),
])
def test_forward_shapes(name, dataset, shape, classes):
    fm = FlatModel(build_model(name, dataset, pretrained="none"))
    out = fm.logits(fm.initial_vector(), torch.randn(2, *shape))
    assert out.shape == (2, classes)


def test_flat_model_matches_module():
    module = build_model("cnn", "mnist")
    fm = FlatModel(module)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(fm.logits(fm.initial_vector(), x), module.eval()(x))


def test_unknown_and_misfit_models():
    with pytest.raises(InputError, match="unknown model"):
        build_model("vit", "mnist")
    with pytest.raises(InputError, match="does not fit"):
        build_model("lenet", "cifar")
