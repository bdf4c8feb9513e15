"""Large-model baselines of the ResNet-18 experiments (SPEC section 9, last paragraph).

Fine-tuning continues the training SGD on D \\ U from w_T:
    w <- w - eta_{T+k} * clip_c( (1/|B_k \\ U|) sum_{i in B_k \\ U} grad CE_i(w) + lambda w ),
with eta_{T+k} = lr * lr_decay^(T+k), i.e. the decayed step size carries on from training.
NegGrad ascends the loss of the forgotten samples from w_T, without clipping:
    w <- w + s * (1/|b|) sum_{u in b} grad CE_u(w),   b a mini-batch of U, s = scale * lr.
"""
from dataclasses import dataclass, replace

from utils.training.finite import require_finite
from utils.training.functional import data_gradient
from utils.training.train import SGDConfig, make_schedule, sgd

FINETUNE_SEED_OFFSET = 101
NEGGRAD_SEED_OFFSET = 202


@dataclass(frozen=True)
class FineTuneConfig:
    """Fine-tuning's settings, built once from the flags: the training SGD (``sgd``) run for
    ``epochs`` (``--finetune_epochs``) more epochs of mini-batches of ``batch_size``, the
    schedule drawn from ``seed`` + FINETUNE_SEED_OFFSET (reshuffled per epoch if ``reshuffle``)."""
    sgd: SGDConfig
    epochs: int
    batch_size: int
    seed: int
    reshuffle: bool

    @classmethod
    def from_args(cls, args):
        return cls(SGDConfig.from_args(args), args.finetune_epochs, args.batch_size, args.seed, args.reshuffle)


@dataclass(frozen=True)
class NegGradConfig:
    """NegGrad's settings, built once from the flags: ``epochs`` (``--neggrad_epochs``) of
    batches of ``batch_size`` (``--neggrad_batch``) drawn from ``seed`` + NEGGRAD_SEED_OFFSET,
    ascent step s = ``--neggrad_lr_scale`` * ``--lr``."""
    step: float
    epochs: int
    batch_size: int
    seed: int

    @classmethod
    def from_args(cls, args):
        return cls(args.neggrad_lr_scale * args.lr, args.neggrad_epochs, args.neggrad_batch, args.seed)


def finetune(fm, w_T, X, y, keep, config, steps_done, progress=False):
    """``config.epochs`` epochs of clipped SGD on the kept samples, starting at w_T with the
    step size eta_{steps_done} (``config``: a FineTuneConfig)."""
    schedule = [b.to(X.device) for b in make_schedule(len(y), config.batch_size, config.epochs,
                                                      config.seed + FINETUNE_SEED_OFFSET, config.reshuffle)]
    cfg = replace(config.sgd, lr=config.sgd.step_size(steps_done))   # the step size carries on from eta_T
    return sgd(fm, w_T, X, y, schedule, cfg,
               keep=keep, norm="mean", progress=progress, desc="fine-tune",
               hint="lower --lr or --clip, or --finetune_epochs")


def neggrad(fm, w_T, X, y, U, config):
    """``config.epochs`` epochs of gradient ascent on CE over U (``config``: a NegGradConfig)."""
    w = w_T.detach().clone()
    U = U.to(X.device)
    schedule = make_schedule(len(U), config.batch_size, config.epochs, config.seed + NEGGRAD_SEED_OFFSET)
    for t, batch in enumerate(schedule):
        idx = U[batch.to(X.device)]
        w = w + config.step * data_gradient(fm, w, X[idx], y[idx], len(idx))
        require_finite(w, f"NegGrad's ascent at step {t + 1} of {len(schedule)}",
                       "lower --neggrad_lr_scale or --neggrad_epochs")
    return w
