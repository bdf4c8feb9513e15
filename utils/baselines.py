"""Large-model baselines of the ResNet-18 experiments (SPEC section 9, last paragraph).

Fine-tuning continues the training SGD on D \\ U from w_T:
    w <- w - eta_{T+k} * clip_c( (1/|B_k \\ U|) sum_{i in B_k \\ U} grad CE_i(w) + lambda w ),
with eta_{T+k} = lr * lr_decay^(T+k), i.e. the decayed step size carries on from training.
NegGrad ascends the loss of the forgotten samples from w_T, without clipping:
    w <- w + s * (1/|b|) sum_{u in b} grad CE_u(w),   b a mini-batch of U, s = scale * lr.
"""
from dataclasses import replace

from utils.finite import require_finite
from utils.functional import data_gradient
from utils.train import SGDConfig, make_schedule, sgd

FINETUNE_SEED_OFFSET = 101
NEGGRAD_SEED_OFFSET = 202


def finetune(fm, w_T, X, y, keep, args, steps_done, progress=False):
    """``args.finetune_epochs`` epochs of clipped SGD on the kept samples, starting at w_T."""
    schedule = [b.to(X.device) for b in make_schedule(len(y), args.batch_size, args.finetune_epochs,
                                                      args.seed + FINETUNE_SEED_OFFSET, args.reshuffle)]
    cfg = SGDConfig.from_args(args)
    cfg = replace(cfg, lr=cfg.step_size(steps_done))       # the step size carries on from eta_T
    return sgd(fm, w_T, X, y, schedule, cfg,
               keep=keep, norm="mean", progress=progress, desc="fine-tune",
               hint="lower --lr or --clip, or --finetune_epochs")


def neggrad(fm, w_T, X, y, U, args):
    """``args.neggrad_epochs`` epochs of gradient ascent on CE over U, batches of ``neggrad_batch``."""
    step = args.neggrad_lr_scale * args.lr
    w = w_T.detach().clone()
    U = U.to(X.device)
    schedule = make_schedule(len(U), args.neggrad_batch, args.neggrad_epochs, args.seed + NEGGRAD_SEED_OFFSET)
    for t, batch in enumerate(schedule):
        idx = U[batch.to(X.device)]
        w = w + step * data_gradient(fm, w, X[idx], y[idx], len(idx))
        require_finite(w, f"NegGrad's ascent at step {t + 1} of {len(schedule)}",
                       "lower --neggrad_lr_scale or --neggrad_epochs")
    return w
