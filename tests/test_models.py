"""Model zoo: parameter counts of the SPEC and forward shapes."""
import pytest
import torch

from models import build_model
from utils.common.catalog import DATASETS, MODEL_TABLE, model_builder
from utils.training.functional import FlatModel
from utils.common.errors import InputError
from utils.curvature.hvp import choose_engine


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


@pytest.mark.parametrize("name, dataset, shape", [
    ("logistic", "mnist", (1, 28, 28)), ("mlp", "wine", (13,)), ("cnn", "mnist", (1, 28, 28)),
    ("cnn", "cifar", (3, 32, 32)), ("lenet", "mnist", (1, 28, 28)),
])
def test_layer_chain_is_the_forward_pass(name, dataset, shape):
    """layers() (used by the layered Hessian engine) computes the same function in eval mode."""
    torch.manual_seed(1)
    module = build_model(name, dataset).eval()
    x = torch.randn(4, *shape)
    out = x
    for layer in module.layers():
        out = layer(out)
    torch.testing.assert_close(out, module(x), rtol=1e-6, atol=1e-6)


def test_unknown_and_misfit_models():
    with pytest.raises(InputError, match="unknown model"):
        build_model("vit", "mnist")
    with pytest.raises(InputError, match="does not fit"):
        build_model("lenet", "cifar")
    with pytest.raises(InputError, match="ResNet-18 takes 3-channel images"):
        build_model("resnet18", "mnist")        # torchvision's ResNet-18 takes RGB inputs only


@pytest.mark.parametrize("row", MODEL_TABLE, ids=lambda row: row.name)
def test_the_model_table_builds_each_model_for_every_dataset_it_accepts(row):
    """Each model on each dataset its row accepts: the builder named, the right logits, the
    row's engine; on the others, the one-line misfit error."""
    accepted = 0
    for dataset, info in DATASETS.items():
        builder, why = model_builder(row.name, info)
        if builder is None:
            with pytest.raises(InputError, match=f"does not fit dataset {dataset}: {why}"):
                build_model(row.name, dataset, pretrained="none")
            continue
        module = build_model(row.name, dataset, pretrained="none")
        assert builder == type(module).__name__ or builder == row.name == "resnet18"
        fm = FlatModel(module)
        assert choose_engine(fm) == row.engine
        accepted += 1
        assert fm.logits(fm.initial_vector(), torch.randn(2, *info["shape"])).shape == (2, info["classes"])
    assert accepted >= 1
