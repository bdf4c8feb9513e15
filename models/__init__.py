"""Models of SPEC section 4, built by name through the model table (``utils.common.catalog``:
builder, accepted input shapes, Hessian engine). All are used in eval mode (see README).

Models whose forward pass is a plain chain of layers also list it in ``layers()`` (the same
function in eval mode, dropout being the identity there); the layered Hessian engine
(``utils/curvature/layered_hvp.py``) runs on that list.
"""
import os
import sys

import torch
from torch import nn

from utils.common.catalog import DATASETS, MODEL_BY_NAME, MODEL_TABLE, MODELS, model_builder
from utils.common.errors import InputError


class Logistic(nn.Module):
    """Multinomial logistic regression: Linear(in, C) on flattened inputs."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))

    def layers(self):
        return [nn.Flatten(), self.fc]


class MLP(nn.Module):
    """Linear(in, 64) -> Dropout -> ReLU -> Linear(64, C)."""

    def __init__(self, in_features, num_classes, hidden=64):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout()
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.dropout(self.fc1(x.flatten(1)))))

    def layers(self):
        return [nn.Flatten(), self.fc1, nn.ReLU(), self.fc2]


class CNNMnist(nn.Module):
    """The authors' MNIST CNN (21,840 parameters with 10 classes)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5)
        self.conv2 = nn.Conv2d(10, 20, 5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.dropout = nn.Dropout()
        self.fc2 = nn.Linear(50, num_classes)

    def forward(self, x):
        x = torch.relu(nn.functional.max_pool2d(self.conv1(x), 2))
        x = torch.relu(nn.functional.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = self.dropout(torch.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)

    def layers(self):
        return [self.conv1, nn.MaxPool2d(2), nn.ReLU(), self.conv2, nn.MaxPool2d(2), nn.ReLU(),
                nn.Flatten(), self.fc1, nn.ReLU(), self.fc2]


class CNNCifar(nn.Module):
    """The authors' CIFAR CNN: two 5x5 conv(64) + max-pool(3, 2), then 1024-384-192-C."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 5)
        self.conv2 = nn.Conv2d(64, 64, 5)
        self.pool = nn.MaxPool2d(3, 2)
        self.fc1 = nn.Linear(64 * 4 * 4, 384)
        self.fc2 = nn.Linear(384, 192)
        self.fc3 = nn.Linear(192, num_classes)

    def forward(self, x):
        x = torch.relu(self.pool(self.conv1(x)))
        x = torch.relu(self.pool(self.conv2(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))

    def layers(self):
        return [self.conv1, self.pool, nn.ReLU(), self.conv2, self.pool, nn.ReLU(), nn.Flatten(),
                self.fc1, nn.ReLU(), self.fc2, nn.ReLU(), self.fc3]


class LeNet5(nn.Module):
    """LeNet-5 for 1x28x28 inputs (61,706 parameters with 10 classes)."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))

    def layers(self):
        # max-pooling commutes with ReLU: pool first, as in the other CNNs
        return [self.conv1, nn.MaxPool2d(2), nn.ReLU(), self.conv2, nn.MaxPool2d(2), nn.ReLU(),
                nn.Flatten(), self.fc1, nn.ReLU(), self.fc2, nn.ReLU(), self.fc3]


def load_state_file(net, path):
    """Load the state_dict file ``path`` (--pretrained) into ``net``: InputError naming the file
    when it is missing, unreadable, not a state_dict of tensors, or does not fit ``net``."""
    if not os.path.isfile(path):
        raise InputError(f"--pretrained: file {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:        # torch.load raises many types for a damaged or foreign file
        raise InputError(f"--pretrained: {path} is not a readable torch state_dict file ({type(e).__name__}); "
                         f"save one with torch.save(model.state_dict(), path)")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"--pretrained: {path} holds a {type(state).__name__}, not a state_dict "
                         f"(a dict of parameter names to tensors)")
    own = net.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [f"{k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}"
                 for k, v in own.items() if k in state and state[k].shape != v.shape]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(f"--pretrained: {path} does not fit {type(net).__name__}: "
                         f"{'; '.join(problems[:3])}{more}")
    net.load_state_dict(state)


def resnet18(num_classes, pretrained="auto"):
    """torchvision ResNet-18 with a new C-way head.

    pretrained: 'auto' tries the ImageNet weights (torchvision cache, then network) and
    falls back to random initialisation with a notice; 'none'; or a state_dict path.
    """
    from torchvision.models import ResNet18_Weights, resnet18 as tv_resnet18
    net = tv_resnet18(weights=None)
    if pretrained not in ("auto", "none"):
        load_state_file(net, pretrained)
    elif pretrained == "auto" and os.environ.get("HFU_OFFLINE") != "1":
        try:
            net.load_state_dict(ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False))
        except Exception:
            print("notice: ImageNet weights for resnet18 unavailable; training from random initialisation",
                  file=sys.stderr)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def build_model(name, dataset, pretrained="auto"):
    """Build model ``name`` for ``dataset`` with the builder the model table
    (``utils.common.catalog.MODEL_TABLE``) names for its inputs; InputError for unknown names or misfits."""
    if name not in MODELS:
        raise InputError(f"--model: unknown model {name!r}; choose from {', '.join(MODELS)}")
    if dataset not in DATASETS:
        raise InputError(f"--dataset: unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    info = DATASETS[dataset]
    builder, why = model_builder(name, info)
    if builder is None:
        raise InputError(f"--model: {name} does not fit dataset {dataset}: {why}")
    in_features = 1
    for s in info["shape"]:
        in_features *= s
    given = dict(in_features=in_features, num_classes=info["classes"], pretrained=pretrained)
    return globals()[builder](*(given[arg] for arg in MODEL_BY_NAME[name].takes))


def table_engine(module):
    """The Hessian engine the model table gives ``module``'s class, or None for a module
    whose class no row builds (a function's product, or a network defined elsewhere)."""
    for row in MODEL_TABLE:
        for _, builder in row.builders:
            built = globals()[builder]
            if isinstance(built, type) and isinstance(module, built):
                return row.engine
    return None
