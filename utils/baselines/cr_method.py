"""Certified removal as a method of the repository (``main_CR.py``): its settings, its trained
model (cached), its reference CR_Retrain, the Hessian-free bank of its trajectory, the
sequence of requests and the record. The maths is in ``utils.baselines.certified_removal``.

    cache/cr-original-<key>.pt     b, the SGD run with b / n (w_sgd), its exact optimum w*
    forget-*/CR_Retrain-<key>.pt   the exact optimum of L_b(.; D \\ U), same b
    forget-*/CR-<key>.pt           the release after the m requests of U, one at a time
"""
import dataclasses
import os
import time
from dataclasses import dataclass

import torch

from utils.baselines import certified_removal as cr
from utils.common import artifacts, keys
from utils.common.errors import InputError
from utils.common.provenance import provenance
from utils.common.report import info
from utils.proposed.hf import check_replay, recursion
from utils.training.train import sgd

B_SEED_OFFSET = 7        # b = sigma_b xi, xi ~ N(0, I_d) drawn from --seed + 7


@dataclass(frozen=True)
class CRConfig:
    """main_CR.py's settings: the removal step, repair steps, the noise sigma_b and the budget
    B (one given by the flags, the other derived at --epsilon, --delta), the optimum's tolerance."""
    removal: str
    repair: int
    epsilon: float
    delta: float
    sigma: float
    budget: float
    tol: float
    seed: int

    @classmethod
    def from_args(cls, args):
        if args.cr_budget > 0:
            budget = args.cr_budget
            sigma = cr.sigma_for(args.epsilon, args.delta, budget)
        else:
            sigma = args.std
            budget = cr.budget_for(sigma, args.delta, args.epsilon)
        return cls(args.removal, args.repair, args.epsilon, args.delta, sigma, budget, args.cr_tol, args.seed)


def objective(exp, b):
    """L_b over exp's training data (float64, sum form, N = n)."""
    return cr.Objective(exp.X, exp.y, exp.args.num_classes, exp.sgd_config.lam, b)


def perturbed_sgd(exp, b):
    """exp's SGD settings with b / n added to every mini-batch gradient."""
    return dataclasses.replace(exp.sgd_config, linear=(b / exp.n).to(exp.w0.dtype))


def trained(exp, cfg):
    """(b, w_sgd, w*, record): cached per training configuration and noise flags; else b is
    drawn, SGD with the usual flags is run on L_b / n and polished to the exact optimum."""
    path = exp.cache_path("cr-original", keys.FAMILIES["cr-original"])
    with artifacts.lock(path, "the certified-removal model"):
        if os.path.exists(path):
            t = artifacts.load_tensors(path, expect={"b": (exp.fm.d,), "w_sgd": (exp.fm.d,), "w": (exp.fm.d,)},
                                       finite=("b", "w_sgd", "w"))
            record = artifacts.read_json(path[:-3] + ".json", fields=("train_s", "train_residual"))
            return t["b"].to(exp.device), t["w_sgd"].to(exp.device), t["w"].to(exp.device), record
        gen = torch.Generator().manual_seed(cfg.seed + B_SEED_OFFSET)
        b = (cfg.sigma * torch.randn(exp.fm.d, generator=gen, dtype=torch.float64)).to(exp.device)
        start = time.perf_counter()
        w_sgd = sgd(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, perturbed_sgd(exp, b),
                    progress=exp.progress, desc="train (certified removal)")
        sgd_s = time.perf_counter() - start
        obj = objective(exp, b)
        start = time.perf_counter()
        sgd_residual = obj.residual(w_sgd, obj.all())[0]
        w, gnorm, steps = cr.polish(obj, w_sgd, obj.all(), cfg.tol)
        polish_s = time.perf_counter() - start
        record = {"sigma_b": cfg.sigma, "tol": cfg.tol, "train_residual": sum(obj.residual(w, obj.all())),
                  "sgd_residual": sgd_residual, "polish_newton_steps": steps, "sgd_s": sgd_s,
                  "polish_s": polish_s, "train_s": sgd_s + polish_s, "train_config": exp.train_config(),
                  "config": exp.method_config(keys.FAMILIES["cr-original"]), "provenance": provenance(exp)}
        artifacts.write_json(path[:-3] + ".json", record)
        artifacts.save_tensors(path, {"b": b, "w_sgd": w_sgd, "w": w})
        return b, w_sgd, w, record


def reference(exp, obj, w, cfg):
    """CR_Retrain: the exact optimum of L_b(.; D \\ U), same b (saved; reused when present)."""
    got = exp.load_method("CR_Retrain")
    if got is not None:
        return got[0].double(), got[1]["metrics"]
    keep = exp.keep.clone()
    start = time.perf_counter()
    w_ref, gnorm, steps = cr.polish(obj, w, keep, cfg.tol)
    metrics = dict(exp.metrics(w_ref), gradient_residual=sum(obj.residual(w_ref, keep)), tol=cfg.tol,
                   polish_newton_steps=steps, retrain_s=time.perf_counter() - start, sigma_b=cfg.sigma,
                   data_source=exp.data.source)
    exp.save_method("CR_Retrain", w_ref, metrics)
    return w_ref, metrics


def bank(exp, b, w_sgd):
    """{u: step_u} for the requests (the forget set), from the recursion along the SGD run with
    b / n (its replay must end at the cached w_sgd), and the seconds it took: step_u = a_u, or
    a_u + q_u with ``--hf_order 2`` (the second Taylor term, docs/method.md "Second order")."""
    start = time.perf_counter()
    w_replay, A, _, *Q = recursion(exp.fm, exp.w0, exp.X, exp.y, exp.schedule, perturbed_sgd(exp, b), exp.U,
                                   exp.unlearn, rho_iters=0, progress=exp.progress)
    check_replay(w_replay, w_sgd, exp)
    steps = A + Q[0] if Q else A
    return {int(u): steps[k] for k, u in enumerate(exp.U.tolist())}, time.perf_counter() - start


def run(exp, cfg):
    """The whole method: (rows for the summary table, the record of the release, its path)."""
    if cfg.sigma <= 0:
        raise InputError("--std / --cr_budget: sigma_b must be positive")
    b, w_sgd, w_star, trained_record = trained(exp, cfg)
    obj = objective(exp, b)
    w_ref, ref_metrics = reference(exp, obj, w_star, cfg)
    a, precompute_s = bank(exp, b, w_sgd) if cfg.removal == "hf" else (None, 0.0)

    def show(r):
        if exp.progress:
            info(f"request {r.sample}: residual {r.residual:.4g}"
                 + (f" (bound {r.bound:.4g})" if r.bound is not None else "")
                 + f", spent {r.spent:.4g} of {cfg.budget:.4g}" + (" -> retrained" if r.retrained else ""))

    policy = cr.Policy(cfg.removal, cfg.budget, cfg.tol, cfg.repair)
    w, requests = cr.remove_sequence(obj, w_star, exp.U.tolist(), policy, a, progress=show)
    order = exp.unlearn.hf.order
    record = dict(exp.metrics(w), removal=cfg.removal, hf_order=order, repair=cfg.repair, delta=cfg.delta, epsilon=cfg.epsilon,
                  sigma_b=cfg.sigma, budget=cfg.budget, tol=cfg.tol, c_delta=cr.c_delta(cfg.delta),
                  hessian_lipschitz_logits=cr.GAMMA_LOGITS, train_residual=trained_record["train_residual"],
                  train_s=trained_record["train_s"], precompute_s=precompute_s,
                  storage_bytes=sum(v.numel() * v.element_size() for v in a.values()) if a else 0,
                  bank_rows=len(a) if a else 0, reference="CR_Retrain",
                  distance=float((w - w_ref).norm()), unit_norm=bool(exp.args.unit_norm),
                  data_source=exp.data.source, **cr.summarize(requests, cfg.sigma, cfg.delta))
    path = exp.save_method("CR", w, record)
    rows = [dict(method="CR trained (w*)", **exp.metrics(w_star), distance=float((w_star - w_ref).norm())),
            dict(method=f"CR[{cfg.removal}{'+order2' if order == 2 else ''}]", **record),
            dict(method="CR_Retrain", **ref_metrics, distance=0.0)]
    return rows, record, path
