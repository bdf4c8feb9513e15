"""Hessian-free approximators (Qiao et al., ICLR 2025): the recursion, the bank, and unlearning.

Every candidate sample u owns a_u in R^d, a_u = 0 at t = 0, and at every step t

    a_u <- (I - eta_t J_t) a_u + [u in B_t] eta_t C_t (1/|B_t|) grad CE_u(w_t)        (norm='batch')

(paper ordering: the gradient is injected after the contraction). For the mean-normalised
retrain (norm='mean') the injected gradient is grad CE_u - mean_{j in B_t, j != u} grad CE_j
(just grad CE_u when |B_t| = 1). a_u is d w_T / d s at s = 0 when sample u's weight in every
batch loss is (1 - s), so w_T + sum_{u in U} a_u approximates the retrained model.

The recursion runs fused with a replay of the training SGD (``utils.training.train.sgd`` with an
``on_step`` hook), so the trajectory w_0..w_T is never stored; all rows are updated as
one block per step by the engines of ``utils.curvature.hvp``.

The bank (``utils.proposed.bank``): rows indexed by sample id through a stored candidate list,
saved once per training configuration (+ retrain normaliser, storage dtype, candidate set)
as row-range shards with a JSON manifest, and reused for every deletion set and every m.
Under torchrun the rows are split into contiguous shards, one per rank
(``utils.proposed.distributed``); ``utils.proposed.replay`` answers requests without any bank.
"""
import contextlib
import math
import time

import torch

from utils.common import artifacts, keys
from utils.proposed.bank import ShardedBank, complete, write_index, write_shard
from utils.proposed.certify import PowerIteration
from utils.proposed.distributed import Context, shard_bounds
from utils.curvature.hvp import Step, choose_engine, step_jacobian
from utils.curvature.third import clip_second, second_order_products
from utils.common.errors import InputError
from utils.training.finite import require_finite
from utils.proposed.hfconfig import UnlearnConfig
from utils.common.provenance import provenance
from utils.training.train import batch_gradient, sgd

BANK_FLAGS = keys.FAMILIES["hfbank"]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


def injection(G, norm):
    """(1/|B|) grad CE_u rows (norm='batch'), or (1/|B|)(grad CE_u - mean_{j != u} grad CE_j)."""
    b = len(G)
    if norm == "mean" and b > 1:
        return (b * G - G.sum(0, keepdim=True)) / ((b - 1) * b)
    return G / b


def injected(op, w, sel, norm, hf, cfg):
    """The rows inj_u, u = the samples of B_t selected by the mask ``sel`` (internal layout),
    that the recursion adds times eta_t:

        paper:        C_t injection(grad CE_u)                       (``injection``, ``norm``)
        sample_clip:  injection(clip_c(grad CE_u + lambda w_t))     (each row clipped on its own)
        uncorrected:  either, with norm 'batch' (1/|B_t|, no batch-mean correction)."""
    norm = "batch" if hf.has("uncorrected") else norm
    G = op.per_sample_grads()
    if not hf.has("sample_clip"):
        return op.clip_apply(injection(G, norm)[sel])
    G = G + cfg.lam * op.to_internal(w)
    G = G * torch.clamp(cfg.clip / torch.linalg.vector_norm(G, dim=1, keepdim=True), max=1.0)
    return injection(G, norm)[sel]


def recursion(fm, w0, X, y, schedule, cfg, rows, method=UnlearnConfig(),
              engine="auto", rho_iters=2, progress=False, summed=False):
    """Replay training and run the approximator recursion for the samples ``rows``.

    The update of the paper, at every step t of training and for every sample u (a_u = 0 at
    t = 0, the gradient injected after the contraction):

        a_u <- (I - eta_t J_t) a_u + eta_t C_t (1/|B_t|) grad CE_u(w_t)     if u in B_t
        a_u <- (I - eta_t J_t) a_u                                          otherwise

    with w_{t+1} = w_t - eta_t clip_c(g_t(w_t)), J_t = C_t (H_{B_t}(w_t) + lambda I) and C_t
    the Jacobian of the clipping (``utils.curvature.hvp``); ``method.retrain_norm`` 'mean' injects the
    gradient of the mean-normalised retrain instead (``injection``). Then w_T + sum_{u in U} a_u approximates
    the model retrained without U. ``utils.proposed.reference.dense_recursion`` is the same recursion
    with explicit d x d matrices (slow; the tests compare the two).

    Returns (w_T, A, rho_t): A[r] = a_{rows[r]} in parameter order, rho_t the per-step
    power-iteration estimates of ||I - eta_t J_t||. With ``method.hf.order`` 2, returns
    (w_T, A, rho_t, Q), Q[r] = q_{rows[r]} = (1/2) d^2 w_T / ds^2 along e_{rows[r]} (summed=True:
    along 1_rows, the set's full second-order term) by ``second_order_step``.

    summed=True returns A with one row, sum_{u in rows} a_u: the update is linear in a_u
    with the same operator for every u, so the sum obeys the same recursion with the
    injections of all of ``rows`` in B_t added into one vector (one Hessian-vector product
    per step instead of |rows|; equal to A.sum(0) up to rounding).

    ``method`` (``UnlearnConfig``) gives the retrain normaliser, the memory budget of the
    Hessian-vector products and, in ``method.hf`` (``HFConfig``), a research variant of the
    recursion: the order of injection and contraction, the injected rows (``injected``), the
    curvature in J_t and a damping (``utils.curvature.hvp``); only the default is d w_T / d s.

    ``cfg`` is the training run's SGDConfig (step sizes, clip c, lambda). After every step t
    the largest ||a_u|| must be finite and at most 2 c sum_{s <= t} eta_s
    (``SGDConfig.reach_bound``: the farthest any deletion can move the clipped SGD
    iterate, so a larger a_u predicts an unreachable retrained model); otherwise the
    recursion has diverged and InputError names the step and the flag to change (with
    summed=True the bound holds for the sum: it predicts the retrain without all of rows).
    """
    engine = choose_engine(fm, engine)
    norm, hf = method.retrain_norm, method.hf
    n = len(y)
    row_of = torch.full((n,), -1, dtype=torch.long, device=X.device)
    row_of[rows.to(X.device)] = 0 if summed else torch.arange(len(rows), device=X.device)
    A = torch.zeros(min(len(rows), 1) if summed else len(rows), fm.d,
                    dtype=w0.dtype, device=w0.device)                     # internal layout
    power = PowerIteration(fm.d, w0.dtype, w0.device, iters=rho_iters) if rho_iters > 0 else None
    state = {}

    inject_first = hf.has("inject_first")
    remedy = divergence_remedy(cfg, hf)
    Q = torch.zeros_like(A) if hf.order == 2 else None

    def on_step(t, w, batch, eta, g):
        step = Step(fm, w, X[batch], y[batch], cfg.lam, g, cfg.clip, method.mem_budget_mb)
        op = step_jacobian(step, engine, curvature=hf.curvature, damping=hf.damping)
        state["op"] = op
        r = row_of[batch]
        sel = r >= 0
        if Q is not None:
            second_order_step(op, second_order_products(step, op, engine), A, Q, r, eta, norm, cfg)
            if len(A):
                check_divergence(A, t, len(schedule), cfg.reach_bound(t + 1), None)
                require_finite(Q, f"the second-order rows q_u at step {t + 1}", "lower --lr")
            if power is not None:
                power.step(op, eta)
            return
        inject = bool(sel.any())
        if inject and inject_first:
            A.index_add_(0, r[sel], injected(op, w, sel, norm, hf, cfg), alpha=eta)
        if len(A):
            op.contract_(A, eta)
        if inject and not inject_first:
            A.index_add_(0, r[sel], injected(op, w, sel, norm, hf, cfg), alpha=eta)
        if power is not None:
            power.step(op, eta)
        if len(A):
            check_divergence(A, t, len(schedule), cfg.reach_bound(t + 1), power, remedy)

    w_T = sgd(fm, w0, X, y, schedule, cfg, on_step=on_step,
              progress=progress, desc="Proposed precompute")
    A = state["op"].from_internal(A) if "op" in state else A
    rho_t = torch.tensor(power.per_step if power else [], dtype=torch.float64)
    if Q is None:
        return w_T, A, rho_t
    return w_T, A, rho_t, state["op"].from_internal(Q) if "op" in state else Q


def second_order_step(op, products, A, Q, r, eta, norm, cfg):
    """One step of the order-2 recursion (docs/method.md, "Second order"), in place, for the
    rows a of A (a_t, before this step) and q of Q; ``r`` holds, per batch sample, the row it
    owns or -1 (several samples may share a row: the set term):

        g'      = (H_B + lambda I) a - sum_{u in B} inj_u(grad CE)
        q      <- (I - eta J_t) q + eta C_t (sum_{u in B} inj_u(H a) - (1/2) D^3 L_B[a, a])
                  - (eta/2) D^2 clip_c(g_t)[g', g']
        a      <- (I - eta J_t) a + eta C_t sum_{u in B} inj_u(grad CE)

    with inj_u(V) = (1/|B|) V_u ('batch') or (V_u - mean_{j in B, j != u} V_j)/|B| ('mean',
    ``injection``) over the per-sample rows V_i: gradients, or Hessian-vector products
    hess CE_i a. For 'mean', inj_u(H a) = (H_u a - H_B a)/(|B| - 1) (|B| > 1)."""
    if not len(A):
        return
    sel = r >= 0
    b = len(r)
    KA = op.hvp_reg(A)                                          # (H_B + lambda I) a
    rows = r[sel]
    V = products.third(A).mul_(-0.5)
    gp = KA.clone() if op.clipping else None                   # D^2 clip_c = 0 while inactive
    if len(rows):
        G = injection(op.per_sample_grads(), norm)[sel]
        if gp is not None:
            gp.index_add_(0, rows, G, alpha=-1.0)
        HA = products.sample_hvp(sel.nonzero().squeeze(1), A[rows])
        if norm == "mean" and b > 1:
            M = (HA - (KA[rows] - cfg.lam * A[rows])) / (b - 1)
        else:
            M = HA / b
        V.index_add_(0, rows, M)
    V = op.clip_apply(V)
    if gp is not None:
        V.sub_(clip_second(op, gp, cfg.clip), alpha=0.5)
    op.contract_(Q, eta)
    Q.add_(V, alpha=eta)
    A.sub_(op.clip_apply(KA), alpha=eta)
    if len(rows):
        A.index_add_(0, rows, op.clip_apply(G), alpha=eta)


def divergence_remedy(cfg, hf):
    """The flag to change when the recursion diverges. With damping kappa, I - eta_t (J_t + kappa I)
    has the eigenvalue 1 - eta_t (mu + kappa) for every eigenvalue mu of J_t, of modulus > 1
    for mu >= 0 as soon as eta_t kappa > 2: then the damping itself expands the recursion
    (eta_t <= eta_0 = lr, so it does for the first steps when lr kappa > 2)."""
    kappa = hf.damping
    if kappa > 0 and cfg.lr * kappa > 2:
        return (f"--hf_damping {kappa:g} makes the recursion expand (lr * kappa = {cfg.lr * kappa:.3g} > 2, so "
                f"||I - eta_t (J_t + kappa I)|| > 1): lower --hf_damping below 2 / lr = {2 / cfg.lr:.3g}")
    return "lower --lr or --hf_damping" if kappa > 0 else "lower --lr"


def check_divergence(A, t, steps, bound, power, remedy="lower --lr"):
    """InputError unless every row of A is finite with norm <= ``bound`` after step t; the
    message ends with ``remedy`` (``divergence_remedy``)."""
    largest = float(torch.linalg.vector_norm(A, dim=1).max())
    if largest <= bound:
        return
    rho = ""
    if power is not None and power.per_step:
        top = max(power.per_step)
        rho = f", measured rho {top:.3g}" if math.isfinite(top) else ", measured rho not finite"
    raise InputError(f"the Hessian-free recursion diverged at step {t + 1} of {steps} (max ||a_u|| = "
                     f"{largest:.3g}, beyond 2 c sum eta_t = {bound:.3g}, the farthest a deletion can "
                     f"move w{rho}): {remedy}")


def candidate_rows(spec, listed, n, U):
    """Sample ids that get an approximator: all of range(n), the forget set, or ``listed``
    (``UnlearnConfig.candidate_list``, parsed and range-checked by ``utils.common.options``)."""
    if spec in (None, "all"):
        return torch.arange(n), "all"
    if spec == "forget":
        return U.clone(), U.tolist()
    return torch.tensor(listed, dtype=torch.long), list(listed)


def bank_dir(exp, candidates):
    """Directory of the bank for exp's training config, BANK_FLAGS and candidate set."""
    return exp.cache_path("hfbank", BANK_FLAGS, {"candidates": candidates})[:-len(".pt")]


def coverage(rows, cand_key, dtype):
    """What a bank's precompute and storage figures cover (reported with every result)."""
    return {"candidates": "all" if cand_key == "all" else "declared",
            "bank_rows": len(rows), "bank_dtype": dtype}


def check_replay(w_replay, w_T, exp):
    """InputError unless the replayed trajectory ends at the cached original model."""
    gap = float((w_replay - w_T).norm())
    if gap > 1e-4 * max(1.0, float(w_T.norm())):
        raise InputError(f"the replayed training trajectory ends {gap:.3g} away from the cached "
                         f"original model; delete {exp.train_dir} and rerun")
    return gap


def check_memory_budget(exp):
    """Build the first step's Jacobian operator (cheap): InputError now, before training,
    when one vectorised Hessian-vector product does not fit --mem_budget_mb."""
    cfg, method = exp.sgd_config, exp.unlearn
    b = exp.schedule[0]
    g = batch_gradient(exp.fm, exp.w0, exp.X, exp.y, b, cfg.lam)
    step_jacobian(Step(exp.fm, exp.w0, exp.X[b], exp.y[b], cfg.lam, g, cfg.clip, method.mem_budget_mb),
                  curvature=method.hf.curvature, damping=method.hf.damping)


def open_bank(exp, directory):
    """The complete bank in ``directory``, its rows checked when read against the reach of exp's
    training run, 2 c sum_t eta_t (``ShardedBank``)."""
    return ShardedBank(directory, exp.device, exp.sgd_config.reach_bound(len(exp.schedule)))


def precompute_bank(exp, w_T, ctx=Context()):
    """The bank for exp's flags: opened when cached, else computed and saved.

    Under torchrun every rank replays training and computes the rows of its shard
    (``utils.proposed.distributed.shard_bounds``); rank 0 also measures rho and writes the index
    and manifest. Returns (bank, wall seconds spent now: the maximum over ranks; 0 when cached).
    Rank 0 holds a lock on the bank directory throughout (``utils.common.artifacts.lock``; the
    other ranks wait at a barrier), so a second job on the same configuration waits for
    the first and then opens its bank.
    """
    rows, cand_key = candidate_rows(exp.unlearn.candidates, exp.unlearn.candidate_list, exp.n, exp.U)
    directory = bank_dir(exp, cand_key)
    with artifacts.lock(directory, "this bank") if ctx.is_main else contextlib.nullcontext():
        ctx.barrier()        # rank 0 holds the lock: no other job writes this bank now
        return _open_or_compute(exp, w_T, ctx, rows, cand_key, directory)


def _open_or_compute(exp, w_T, ctx, rows, cand_key, directory):
    method = exp.unlearn
    if complete(directory):
        return open_bank(exp, directory), 0.0
    ctx.barrier()            # every rank has seen the bank absent before any writes it
    bounds = [shard_bounds(len(rows), r, ctx.world) for r in range(ctx.world)]
    lo, hi = bounds[ctx.rank]
    start = time.perf_counter()
    gap = 0.0
    if ctx.is_main or hi > lo:
        w_replay, A, rho_t, *Q = recursion(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, exp.sgd_config,
                                           rows[lo:hi], method, rho_iters=2 if ctx.is_main else 0,
                                           progress=ctx.is_main and exp.progress)
        gap = check_replay(w_replay, w_T, exp)
        if hi > lo:
            stored = [require_finite(M.to(DTYPES[method.bank_dtype]), f"the bank rows in --bank_dtype {method.bank_dtype}",
                                     "use a wider --bank_dtype (float32)") for M in [A] + Q]
            write_shard(directory, lo, hi, stored[0], rows[lo:hi], *stored[1:])
    seconds = ctx.max(time.perf_counter() - start)
    ctx.barrier()
    if ctx.is_main:
        manifest = {"train_config": exp.train_config(), "bank_config": exp.method_config(BANK_FLAGS),
                    "candidate_ids": cand_key, **coverage(rows, cand_key, method.bank_dtype),
                    "d": exp.fm.d, "steps": len(exp.schedule), "engine": choose_engine(exp.fm),
                    "precompute_s": seconds, "world_size": ctx.world, "rho": float(rho_t.max()),
                    "replay_gap": gap, "provenance": provenance(exp),
                    **({"order": method.hf.order} if method.hf.order != 1 else {})}
        write_index(directory, rows, rho_t, manifest, bounds, DTYPES[method.bank_dtype])
    ctx.barrier()
    return open_bank(exp, directory), seconds
