"""A tiny classification task for the pruning tests: synthetic data the tests
make themselves, and small models trained on it in about a second."""
import torch
import torch.nn as nn

from pruning.tasks import ClassificationTask
from pruning.training import FinetuneSettings, train
from prune_models import Residual, TinyResidual  # noqa: F401 - re-exported for the tests


def synthetic_task(n: int = 1200, features: int = 64, classes: int = 4, seed: int = 0,
                   image: bool = False) -> ClassificationTask:
    """Labels are the argmax of a fixed random linear map of the inputs (learnable)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = (x @ torch.randn(features, classes, generator=g)).argmax(1)
    if image:
        x = x.reshape(n, 1, 8, features // 8)
    task = ClassificationTask.from_arrays(x, y, settings=FinetuneSettings(epochs=0.5, lr=1e-3))
    task.probe_size = 200
    return task


def mlp(features: int = 64, hidden: int = 32, classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def trained(model: nn.Module, task: ClassificationTask, epochs: float = 8) -> nn.Module:
    train(model, task.train_x, task.train_y, FinetuneSettings(epochs=epochs, lr=3e-3), seed=0)
    return model.eval()
