"""A network as a deterministic function of one flat parameter vector.

Every method in the repository works on w in R^d, the concatenation of
``model.parameters()`` in order. ``FlatModel`` evaluates the network at any w through
``torch.func.functional_call`` in eval mode (dropout off, batch-norm statistics frozen),
so losses, gradients and Hessian-vector products are plain functions of w.
"""
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode


class _CountOutputs(TorchDispatchMode):
    """Counts the elements of every tensor produced by the ops run under it."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in (out if isinstance(out, (tuple, list)) else [out]):
            if torch.is_tensor(o):
                self.total += o.numel()
        return out


class FlatModel:
    def __init__(self, module):
        self.module = module.eval()
        params = list(module.named_parameters())
        self.names = [n for n, _ in params]
        self.shapes = [p.shape for _, p in params]
        self.numels = [p.numel() for _, p in params]
        self.d = sum(self.numels)
        self.buffers = dict(module.named_buffers())
        self._activations = {}

    def activation_numel(self, X):
        """Elements produced by all ops of one forward pass on X (a memory estimate), memoised
        per input shape and dtype."""
        key = (tuple(X.shape), X.dtype)
        if key not in self._activations:
            with torch.no_grad(), _CountOutputs() as count:
                self.module(X)
            self._activations[key] = max(count.total, 1)
        return self._activations[key]

    def initial_vector(self):
        """The module's current parameters as one flat, detached vector."""
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()]).clone()

    def unflatten(self, w):
        """Flat w -> {name: view of w} in parameter shapes."""
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(w, self.numels), self.shapes)}

    def logits(self, w, X):
        return functional_call(self.module, (self.unflatten(w), self.buffers), (X,))

    def to(self, device):
        self.module.to(device)
        self.buffers = dict(self.module.named_buffers())
        return self


def per_sample_ce(fm, w, X, y):
    """Vector of CE_i(w) = cross-entropy of sample i."""
    return F.cross_entropy(fm.logits(w, X), y, reduction="none")


def data_loss(fm, w, X, y, normaliser, weights=None):
    """(1/normaliser) * sum_i weights_i * CE_i(w)  (weights default to 1)."""
    ce = per_sample_ce(fm, w, X, y)
    if weights is not None:
        ce = ce * weights
    return ce.sum() / normaliser


def data_gradient(fm, w, X, y, normaliser, weights=None):
    """grad_w (1/normaliser) sum_i weights_i CE_i(w), as a detached flat vector."""
    w = w.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(data_loss(fm, w, X, y, normaliser, weights), w)
    return g


def evaluate(fm, w, X, y, batch_size=2048):
    """(accuracy, mean cross-entropy) of parameters w on (X, y); (nan, nan) when empty."""
    if len(y) == 0:
        return float("nan"), float("nan")
    correct, total_loss = 0, 0.0
    with torch.no_grad():
        for s in range(0, len(y), batch_size):
            out = fm.logits(w, X[s:s + batch_size])
            correct += (out.argmax(1) == y[s:s + batch_size]).sum().item()
            total_loss += F.cross_entropy(out, y[s:s + batch_size], reduction="sum").item()
    return correct / len(y), total_loss / len(y)
