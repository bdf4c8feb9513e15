"""Static facts about datasets and models, used for validation before any loading: the
dataset table and the model table (standard library only)."""
from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# shape = per-sample input shape; train_size = size of the official train split
DATASETS = {
    "mnist": dict(kind="image", shape=(1, 28, 28), classes=10, channels=1, train_size=60000,
                  mean=(0.1307,), std=(0.3081,)),
    "fashion-mnist": dict(kind="image", shape=(1, 28, 28), classes=10, channels=1, train_size=60000,
                          mean=(0.5,), std=(0.5,)),
    "cifar": dict(kind="image", shape=(3, 32, 32), classes=10, channels=3, train_size=50000,
                  mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010)),
    "celeba": dict(kind="image", shape=(3, 64, 64), classes=2, channels=3, train_size=162770,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "lfw": dict(kind="image", shape=(3, 64, 64), classes=29, channels=3, train_size=13233,
                mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "wine": dict(kind="tabular", shape=(13,), classes=3, channels=1, train_size=142),
    "cancer": dict(kind="tabular", shape=(30,), classes=2, channels=1, train_size=455),
}

# accepted input shapes of a model-table builder besides a per-sample shape
ANY, RGB = "any", "rgb"


@dataclass(frozen=True)
class Model:
    """One model of the zoo (``models``), built by name.

    builders: ((accepted input shape, builder), ...); the first that accepts the dataset
        builds the model. The shape is a per-sample input shape, ANY (every dataset, inputs
        flattened) or RGB (every 3-channel image dataset); the builder is the name of a class or
        function of ``models``, named here so that this table is read before torch is imported.
    takes: the builder's arguments, by name: in_features, num_classes, pretrained.
    engine: the Hessian engine 'auto' picks for it (``utils.curvature.hvp.choose_engine``).
    title: how a message names it.
    """
    name: str
    builders: tuple
    takes: tuple
    engine: str
    title: str = ""


MODEL_TABLE = (
    Model("logistic", ((ANY, "Logistic"),), ("in_features", "num_classes"), "closed"),
    Model("mlp", ((ANY, "MLP"),), ("in_features", "num_classes"), "layers"),
    Model("cnn", (((1, 28, 28), "CNNMnist"), ((3, 32, 32), "CNNCifar")), ("num_classes",), "layers", "the cnn"),
    Model("lenet", (((1, 28, 28), "LeNet5"),), ("num_classes",), "layers", "LeNet-5"),
    Model("resnet18", ((RGB, "resnet18"),), ("num_classes", "pretrained"), "vjp", "ResNet-18"),
)
MODEL_BY_NAME = {m.name: m for m in MODEL_TABLE}
MODELS = list(MODEL_BY_NAME)


def model_builder(model, info):
    """(builder, "") of ``model`` for inputs of dataset ``info`` (a builder name of the model
    table), or (None, why it cannot take them)."""
    row = MODEL_BY_NAME[model]
    image = info["kind"] == "image"
    for shape, builder in row.builders:
        if shape == ANY or image and (shape == info["shape"] or shape == RGB and info["channels"] == 3):
            return builder, ""
    if not image:
        return None, "it needs image inputs"
    accepted = ["3-channel" if s == RGB else "x".join(map(str, s)) for s, _ in row.builders]
    return None, f"{row.title} takes {' or '.join(accepted)} images"
