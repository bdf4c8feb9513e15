"""Linearity diagnostic of the Hessian-free update (SPEC section 10).

w_T(s) is training with the weight of every u in U set to (1 - s) in every batch loss,
normaliser |B_t| (``utils.training.train.sgd`` with a per-sample weight): w_T(0) = w_T and
w_T(1) = the retrain with --retrain_norm batch, bit for bit. a_u = d w_T(s) / ds at s = 0
for one sample (``utils.proposed.hf``), so w_T + s sum_u a_u is the first-order model of w_T(s).
For each s the diagnostic reports

    distance  ||w_T(s) - w_T||,
    predicted s ||sum_u a_u||,
    residual  ||w_T(s) - (w_T + s sum_u a_u)||,

and the noise floor of the distance. Where the first-order model holds the residual
shrinks like s^2 (a factor 100 per decade of s) and stays far below the distance; where
training is chaotic or kinked the residual is as large as the distance already at small s.
"""
import torch

from utils.proposed.bank import complete
from utils.common.errors import InputError
from utils.evaluation.floor import cached_floor
from utils.proposed.hf import bank_dir, candidate_rows, open_bank
from utils.audits.plots import plt, save_figure
from utils.proposed.replay import Replay
from utils.training.train import sgd

S_VALUES = (0.01, 0.03, 0.1, 0.3, 1.0)


def weighted_train(fm, w0, X, y, schedule, cfg, U, s, progress=False):
    """w_T(s): SGD from w0 over ``schedule`` with weight 1 - s on the samples U (normaliser
    |B_t|); ``cfg`` the training run's SGDConfig."""
    weight = torch.ones(len(y), dtype=w0.dtype, device=X.device)
    weight[torch.as_tensor(U, device=X.device)] = 1 - s
    return sgd(fm, w0, X, y, schedule, cfg, weight=weight, progress=progress, desc=f"s={s:g}")


def table_rows(w_T, runs, a_sum):
    """One dict per (s, w_T(s)) in ``runs``: distance, predicted, residual, residual/distance."""
    w_T, a_sum = w_T.double(), a_sum.double()
    rows = []
    for s, w in runs:
        w = w.double()
        distance = float(torch.linalg.vector_norm(w - w_T))
        residual = float(torch.linalg.vector_norm(w - (w_T + s * a_sum)))
        rows.append(dict(s=s, distance=distance, predicted=s * float(torch.linalg.vector_norm(a_sum)),
                         residual=residual, relative_residual=residual / distance if distance > 0 else None))
    return rows


def plot(rows, floor, title, path):
    """Log-log PNG: distance, predicted and residual against s, the floor, and c s^2 through
    the largest s's residual (the residual follows it down where the first-order model holds).
    Written atomically."""
    s = [r["s"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(s, [r["distance"] for r in rows], "o-", label="||w_T(s) - w_T||")
    ax.plot(s, [r["predicted"] for r in rows], "s--", label="s ||sum_u a_u|| (first order)")
    ax.plot(s, [r["residual"] for r in rows], "^-", label="residual ||w_T(s) - (w_T + s sum a_u)||")
    c = rows[-1]["residual"] / s[-1] ** 2
    ax.plot(s, [c * x ** 2 for x in s], "k:", label="c s^2")
    if floor is not None and floor > 0:
        ax.axhline(floor, color="grey", ls="--", label="noise floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("s (U's weight is 1 - s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def approximator_sum(exp, w_T):
    """(sum_{u in U} a_u, source): from exp's cached bank when it is complete and holds every
    u in U ('bank'), else by one replay of training for the rows U only ('replay')."""
    _, cand_key = candidate_rows(exp.unlearn.candidates, exp.unlearn.candidate_list, exp.n, exp.U)
    directory = bank_dir(exp, cand_key)
    if complete(directory):
        bank = open_bank(exp, directory)
        if all(int(u) in bank.row_of for u in exp.U):
            block, _ = bank.gather(exp.U)
            return block.to(w_T.dtype).sum(0), "bank"
    return Replay(exp, w_T).vectors(exp.U, summed=True)[0], "replay"


def diagnose(exp):
    """The diagnostic for exp's configuration and U: {"rows", "floor", "approximators",
    "retrain_max_abs_diff" (w_T(1) against the cached Retrain, when there is one)}."""
    a = exp.args
    if exp.unlearn.retrain_norm != "batch":
        raise InputError("--retrain_norm: the linearity diagnostic weights U inside batch losses "
                         "normalised by |B_t|; rerun with --retrain_norm batch")
    w_T, _ = exp.original()
    a_sum, source = approximator_sum(exp, w_T)
    runs = [(s, weighted_train(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, exp.sgd_config, exp.U, s,
                               progress=exp.progress)) for s in S_VALUES]
    w_one = runs[-1][1]
    w_floor, _ = cached_floor(exp)
    out = {"rows": table_rows(w_T, runs, a_sum), "approximators": source, "floor_kind": a.floor,
           "floor": float(torch.linalg.vector_norm(w_floor.double() - w_one.double())),
           "sum_a_norm": float(torch.linalg.vector_norm(a_sum)), "retrain_max_abs_diff": None}
    retrain = exp.load_method("Retrain")
    if retrain is not None:
        out["retrain_max_abs_diff"] = float((w_one - retrain[0]).abs().max())
    return out
