"""Hessian-free online certified unlearning (Qiao et al., ICLR 2025), SPEC section 8.

    python3 main_proposed.py --model logistic --dataset mnist --epochs 15 --batch_size 32 \\
        --lr 0.05 --lr_decay 0.995 --clip 5 --regularization 0.5 --num_dataset 1000 --gpu -1

Trains (or reuses) the original model, precomputes (or reuses) the bank of per-sample
approximators a_u, then unlearns U: w = w_T + sum_{u in U} a_u, one request at a time
(default) or as one batch (--batch_unlearn). --application adds Gaussian noise calibrated
by the analytic Gaussian mechanism to the sensitivity bound (or --std sigma), and reports the
epsilon that sigma certifies at --delta, the bound Delta against the realised distance to
Retrain, and the spread over --noise_seeds K noise draws. Saves "Proposed" and, per draw k,
"Proposed_noise" keyed by --noise_seed k (what main_MIAL.py / main_MIAU.py --noise_seed k
attack) under --log_dir; prints the distance to Retrain when it is available.

Sharded precompute (each rank owns a contiguous shard of the bank rows; rank 0 writes
the outputs):

    torchrun --standalone --nproc_per_node 2 main_proposed.py <same flags>

--hf_mode replay keeps no bank: each request is answered by replaying training from the
stored record and running the recursion for the requested vectors only (utils.replay).
"""
from utils.options import check_candidates_cover, parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

import math
import statistics

import torch

from utils.certify import analytic_gaussian_sigma, certified_epsilon, looseness, noise_draws, \
    sensitivity_bound, spread
from utils.experiment import Experiment, METHOD_SCRIPTS, command_line, run_main
from utils import distributed
from utils.forget import forget_set
from utils.hf import HFConfig, check_memory_budget, precompute_bank
from utils.replay import Replay
from utils.errors import InputError
from utils.report import finish, info, table

CHEAP_RETRAIN_MODELS = ("logistic", "mlp")
RHO_MEASURED = "power iteration (a lower estimate of sup_t ||I - eta_t J_t||)"


def certify(args, exp, engine):
    """The record of --application: rho measured (or --rho), Delta bound, sigma, and the
    epsilon that sigma certifies at --delta (None with the reason when nothing is certified)."""
    rho = args.rho if args.rho is not None else engine.rho
    T = len(exp.schedule)
    Bs = math.ceil(exp.n / args.batch_size)
    delta_bound = sensitivity_bound(args.lr, args.lr_decay, args.clip, T, Bs, len(exp.U),
                                    args.batch_size, rho)
    sigma = args.std if args.std > 0 else analytic_gaussian_sigma(args.epsilon, args.delta, delta_bound)
    eps, why = certified_epsilon(sigma, args.delta, delta_bound)
    return {"epsilon": args.epsilon, "delta": args.delta, "rho": rho,
            "rho_measured": engine.rho, "sensitivity": delta_bound, "sigma": sigma,
            "sigma_source": "--std" if args.std > 0 else "analytic Gaussian mechanism",
            "rho_source": "--rho" if args.rho is not None else RHO_MEASURED,
            "certified_epsilon": eps, "certified_epsilon_note": why,
            "certificate_applies": HFConfig.from_args(args).is_paper}


def noised_releases(args, exp, w, w_re, cert, common):
    """Save the --noise_seeds K draws w + sigma z_k as Proposed_noise keyed by --noise_seed k;
    return the record of draw --noise_seed, with the spread over the K draws."""
    if not math.isfinite(cert["sigma"]):
        raise InputError(f"--application: sigma is not finite (Delta {cert['sensitivity']:.4g}); "
                         f"pass a finite --std or a smaller --rho")
    realised = float((w - w_re).double().norm()) if w_re is not None else None
    cert = dict(cert, **looseness(cert["sensitivity"], realised), noise_seeds=args.noise_seeds)
    draws = []
    for z in noise_draws(exp.fm.d, args.seed, args.noise_seeds, w.dtype):
        w_k = w + cert["sigma"] * z.to(exp.device)
        if not bool(torch.isfinite(w_k).all()):
            raise InputError(f"--application: the noised release is not finite (Delta {cert['sensitivity']:.4g}, "
                             f"sigma {cert['sigma']:.4g}); pass a finite --std or a smaller --rho")
        metrics = exp.metrics(w_k)
        if w_re is not None:
            metrics["distance"] = float((w_k.double() - w_re.double()).norm())
        draws.append((w_k, metrics))
    keys = [k for k in ("test_acc", "forget_acc", "remain_acc", "test_loss", "distance") if k in draws[0][1]]
    cert["noise_draws"] = {k: spread([m[k] for _, m in draws]) for k in keys}
    chosen = args.noise_seed
    try:
        for k, (w_k, metrics) in enumerate(draws):
            args.noise_seed = k                      # the draw index keys the saved model
            metrics.update(common, **cert, noise_seed=k)
            metrics["model"] = exp.save_method("Proposed_noise", w_k, metrics)
    finally:
        args.noise_seed = chosen
    return draws[chosen][1]


def certified_text(c):
    """Human lines for the certified release: mechanism, certified epsilon, looseness, spread."""
    eps = (f"{c['certified_epsilon']:.4g}" if c["certified_epsilon"] is not None
           else f"infinite ({c['certified_epsilon_note']})")
    lines = [f"certified noise: epsilon {c['epsilon']}, delta {c['delta']}, rho {c['rho']:.6f}, "
             f"Delta {c['sensitivity']:.4g}, sigma {c['sigma']:.4g} ({c['sigma_source']}); "
             f"certified epsilon at this sigma and delta: {eps}"]
    if c["rho_source"] == RHO_MEASURED:
        lines.append("note: rho is measured by power iteration, which can only underestimate the operator norm, "
                     "so Delta and the certified epsilon are estimates, not a proof; --rho with a proven upper "
                     "bound makes them rigorous")
    if c["realised_distance"] is None:
        lines.append(f"looseness: Delta {c['sensitivity']:.4g}; no Retrain model, so no realised distance")
    else:
        ratio = "-" if c["looseness_ratio"] is None else f"{c['looseness_ratio']:.4g}"
        lines.append(f"looseness: Delta {c['sensitivity']:.4g} vs realised ||w_unlearned - w_retrain|| "
                     f"{c['realised_distance']:.4g}: ratio {ratio}")
    for k, s in c["noise_draws"].items():
        lines.append(f"  {k} over {s['k']} noise draw(s): mean {s['mean']:.4f}, std {s['std']:.4f}, "
                     f"min {s['min']:.4f}, max {s['max']:.4f}")
    return "\n".join(lines)


def reference_retrain(exp):
    """The saved Retrain model, or a fresh retrain when that is cheap; None otherwise."""
    got = exp.load_method("Retrain")
    if got is not None:
        return got[0], "saved"
    if exp.args.model in CHEAP_RETRAIN_MODELS:
        return exp.retrain(), "computed now"
    info(f"no Retrain model for the distance; run: {command_line(METHOD_SCRIPTS['Retrain'])}")
    return None, None


def unlearner(args, exp, w_T, ctx):
    """(bank or replay engine, seconds of precompute spent now, figures with what they cover)."""
    if args.hf_mode == "replay":
        engine = Replay(exp, w_T, measure_rho=args.application)
        return engine, 0.0, dict(precompute_s=0.0, storage_bytes=engine.storage_bytes,
                                 storage_covers="training record (w_0, w_T, schedule); no bank",
                                 bank_rows=0, candidates="requested only")
    bank, seconds = precompute_bank(exp, w_T, ctx)
    m = bank.manifest
    if m["candidates"] != "all" and ctx.is_main:
        info(f"note: approximators were computed for {m['bank_rows']} declared candidates only "
             f"(--hf_candidates); a full bank for all n={exp.n} samples costs "
             f"{exp.n / max(1, m['bank_rows']):.1f} times more precompute and storage")
    return bank, seconds, dict(precompute_s=m["precompute_s"], storage_bytes=bank.storage_bytes,
                               storage_covers=f"{m['bank_rows']} rows x d={m['d']} in {m['bank_dtype']}",
                               bank_rows=m["bank_rows"], candidates=m["candidates"],
                               bank_dtype=m["bank_dtype"], precompute_world_size=m["world_size"])


def precompute_note(args, seconds, figures):
    if args.hf_mode == "replay":
        return "none: each request replays training"
    return f"{'cached' if seconds == 0 else 'now'}, {figures['precompute_world_size']} rank(s)"


def main(args):
    if args.application and args.noise_seed >= args.noise_seeds:
        raise InputError(f"--noise_seed: draw {args.noise_seed} is not among the --noise_seeds "
                         f"{args.noise_seeds} draws 0..{args.noise_seeds - 1}; raise --noise_seeds")
    check_candidates_cover(args, forget_set(args.num_dataset, args.num_forget, args.seed, args.forget_list))
    use_cuda = args.gpu >= 0 and torch.cuda.is_available()
    ctx = distributed.from_environment(use_cuda, args.dist_timeout)
    if ctx.distributed and args.hf_mode == "replay":
        raise InputError("--hf_mode replay runs in one process; launch it without torchrun")
    if ctx.distributed and use_cuda:
        args.gpu = ctx.local_rank
    exp = Experiment(args)
    check_memory_budget(exp)
    if ctx.is_main:
        info(f"data: {exp.data.source}; n={exp.n}, d={exp.fm.d}, m={len(exp.U)}, "
             f"steps={len(exp.schedule)}, device={exp.device}, ranks={ctx.world}")
        w_T, train_s = exp.original()
    ctx.barrier()                         # rank 0 has trained and cached the original
    if not ctx.is_main:
        w_T, train_s = exp.original()
    engine, precompute_s, figures = unlearner(args, exp, w_T, ctx)
    if not ctx.is_main:
        ctx.close()
        return
    if args.batch_unlearn:
        w, seconds = engine.unlearn_batch(w_T, exp.U)
        per_request = [seconds / max(1, len(exp.U))] * len(exp.U)
    else:
        w, per_request = engine.unlearn_online(w_T, exp.U)
    unlearn_s = sum(per_request)
    hf = HFConfig.from_args(args)
    common = dict(figures, precompute_s_now=precompute_s, hf_mode=args.hf_mode,
                  unlearn_s=unlearn_s, unlearn_median_s=statistics.median(per_request) if per_request else 0.0,
                  rho=engine.rho, retrain_norm=args.retrain_norm,
                  mode="batch" if args.batch_unlearn else "online", data_source=exp.data.source,
                  hf_label=hf.label, **hf.flags())
    if args.hf_mode == "bank":
        common.update(bank_shards_read=engine.shards_read, bank_read_s=engine.read_s)
    results = {"Proposed": (w, dict(exp.metrics(w), **common))}
    w_re, how = reference_retrain(exp)
    rows, summary = [], {"train_s": train_s}
    candidates = [("Original", w_T, exp.metrics(w_T))] + [(k, v[0], v[1]) for k, v in results.items()]
    for name, wm, metrics in candidates:
        if w_re is not None:
            metrics["distance"] = float((wm - w_re).norm())
        if name in results:
            metrics["model"] = exp.save_method(name, wm, metrics)
        rows.append(dict(method=hf.row_name if name == "Proposed" else name, **metrics))
        summary[name] = metrics
    if args.application:
        noisy = noised_releases(args, exp, w, w_re, certify(args, exp, engine), common)
        rows.append(dict(method=f"Proposed_noise[{args.noise_seed}]", **noisy))
        summary["Proposed_noise"] = noisy
    cols = ["method", "distance", "test_acc", "forget_acc", "remain_acc", "test_loss"]
    text = table(rows, cols) + (
        f"\n{args.hf_mode} mode: precompute {common['precompute_s']:.2f}s "
        f"({precompute_note(args, precompute_s, common)}), "
        f"unlearn {unlearn_s * 1e3:.3f} ms total, median {common['unlearn_median_s'] * 1e3:.3f} ms/request "
        f"({common['mode']}), storage {common['storage_bytes'] / 2**20:.2f} MiB "
        f"[{common['storage_covers']}], rho {engine.rho:.6f}")
    if w_re is not None:
        text += f"\ndistance to Retrain ({how})"
    if args.application:
        text += "\n" + certified_text(summary["Proposed_noise"])
        if not hf.is_paper:
            text += (f"\nnote: Delta is derived for the paper's recursion; for the variant {hf.label} it is "
                     f"not established, so this release certifies nothing (docs/method.md, variants)")
    finish(summary, args.json, text)
    ctx.close()


if __name__ == "__main__":
    run_main(main, ARGS)
