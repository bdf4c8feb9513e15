"""Static facts about datasets and models, used for validation before any loading."""

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

MODELS = ["logistic", "mlp", "cnn", "lenet", "resnet18"]


def model_fits(model, info):
    """(ok, reason): whether ``model`` can take inputs of dataset ``info``."""
    shape = info["shape"]
    if model in ("logistic", "mlp"):
        return True, ""
    if info["kind"] != "image":
        return False, "it needs image inputs"
    if model == "lenet" and shape != (1, 28, 28):
        return False, "LeNet-5 takes 1x28x28 images"
    if model == "cnn" and shape not in ((1, 28, 28), (3, 32, 32)):
        return False, "the cnn takes 1x28x28 or 3x32x32 images"
    return True, ""
