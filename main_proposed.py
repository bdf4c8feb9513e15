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
stored record and running the recursion for the requested vectors only (utils.proposed.replay).
"""
from utils.common.options import check_candidates_cover, parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

import math
import os
import statistics

import torch

from utils.proposed.certify import (ReleaseConfig, certificate, certified_text, check_release_fits,
                                    noised_releases)
from utils.common.experiment import Experiment, METHOD_SCRIPTS, command_line, run_main
from utils.proposed import distributed
from utils.training.forget import forget_set
from utils.proposed.hf import DTYPES, bank_dir, candidate_rows, check_memory_budget, precompute_bank
from utils.proposed.bank import complete, shard_name
from utils.proposed.distributed import shard_bounds
from utils.common import resources
from utils.proposed.replay import Replay
from utils.common.errors import InputError
from utils.common.report import finish, info, table

CHEAP_RETRAIN_MODELS = ("logistic", "mlp")


def reference_retrain(exp):
    """The saved Retrain model, or a fresh retrain when that is cheap; None otherwise."""
    got = exp.load_method("Retrain")
    if got is not None:
        return got[0], "saved"
    if exp.args.model in CHEAP_RETRAIN_MODELS:
        return exp.retrain(), "computed now"
    info(f"no Retrain model for the distance; run: {command_line(METHOD_SCRIPTS['Retrain'])}")
    return None, None


def unlearner(exp, w_T, ctx, measure_rho):
    """(bank or replay engine, seconds of precompute spent now, figures with what they cover)."""
    if exp.unlearn.mode == "replay":
        engine = Replay(exp, w_T, measure_rho=measure_rho)
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


def check_outputs(exp, world):
    """Before any work: every directory this run writes to can be written, and the bank (when
    it is to be computed) fits in memory, and its shards fit the file-size limit and the free
    space; so do the --noise_seeds noised releases of --application. InputError naming the
    directory, file or flag otherwise."""
    d = exp.fm.d
    sizes = {exp.method_paths("Proposed")[0]: 4 * d + 4096}
    directories = [exp.forget_dir]
    method = exp.unlearn
    if method.mode == "bank":
        rows, cand_key = candidate_rows(method.candidates, method.candidate_list, exp.n, exp.U)
        directory = bank_dir(exp, cand_key)
        if not complete(directory):
            directories.append(directory)
            elt = DTYPES[method.bank_dtype].itemsize * method.hf.order      # order 2 stores q_u beside a_u
            lo, hi = max((shard_bounds(len(rows), r, world) for r in range(world)), key=lambda b: b[1] - b[0])
            sizes[os.path.join(directory, shard_name(lo, hi))] = (hi - lo) * d * elt + 4096
            # the recursion's rows in float32, their reordered copy, and the stored copy
            resources.check_memory(
                f"the approximator bank ({hi - lo:,} rows x d={d:,} per process)",
                (hi - lo) * d * (2 * method.hf.order * exp.w0.element_size() + elt),
                "declare fewer candidates with --hf_candidates (e.g. forget), use --hf_mode replay, "
                "or a smaller --bank_dtype")
    exp.check_writable(directories, sizes)
    if exp.args.application:
        check_release_fits(ReleaseConfig.from_args(exp.args), exp)


def rho_text(rho):
    """'rho 0.998765', or why there is no number (replay mode measures rho only for --application)."""
    return f"rho {rho:.6f}" if math.isfinite(rho) else "rho not measured"


def precompute_note(mode, seconds, figures):
    if mode == "replay":
        return "none: each request replays training"
    return f"{'cached' if seconds == 0 else 'now'}, {figures['precompute_world_size']} rank(s)"


def main(args):
    check_candidates_cover(args, forget_set(args.num_dataset, args.num_forget, args.seed, args.forget_list))
    use_cuda = args.gpu >= 0 and torch.cuda.is_available()
    ctx = distributed.from_environment(use_cuda, args.dist_timeout)
    if ctx.distributed and args.hf_mode == "replay":
        raise InputError("--hf_mode replay runs in one process; launch it without torchrun")
    exp = Experiment(args, gpu=ctx.local_rank if ctx.distributed and use_cuda else None)
    check_memory_budget(exp)
    if ctx.is_main:
        check_outputs(exp, ctx.world)
    if ctx.is_main:
        info(f"data: {exp.data.source}; n={exp.n}, d={exp.fm.d}, m={len(exp.U)}, "
             f"steps={len(exp.schedule)}, device={exp.device}, ranks={ctx.world}")
        w_T, train_s = exp.original()
    ctx.barrier()                         # rank 0 has trained and cached the original
    if not ctx.is_main:
        w_T, train_s = exp.original()
    engine, precompute_s, figures = unlearner(exp, w_T, ctx, args.application)
    if not ctx.is_main:
        ctx.close()
        return
    if args.batch_unlearn:
        w, seconds = engine.unlearn_batch(w_T, exp.U)
        per_request = [seconds / max(1, len(exp.U))] * len(exp.U)
    else:
        w, per_request = engine.unlearn_online(w_T, exp.U)
    unlearn_s = sum(per_request)
    hf = exp.unlearn.hf
    common = dict(figures, precompute_s_now=precompute_s, hf_mode=args.hf_mode,
                  unlearn_s=unlearn_s, unlearn_median_s=statistics.median(per_request) if per_request else 0.0,
                  rho=engine.rho, retrain_norm=exp.unlearn.retrain_norm,
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
        release = ReleaseConfig.from_args(args)
        cert = certificate(release, exp, args.batch_size, engine.rho, hf.is_paper)
        noisy = noised_releases(release, exp, w, w_re, cert, common)
        rows.append(dict(method=f"Proposed_noise[{args.noise_seed}]", **noisy))
        summary["Proposed_noise"] = noisy
    cols = ["method", "distance", "test_acc", "forget_acc", "remain_acc", "test_loss"]
    text = table(rows, cols) + (
        f"\n{args.hf_mode} mode: precompute {common['precompute_s']:.2f}s "
        f"({precompute_note(args.hf_mode, precompute_s, common)}), "
        f"unlearn {unlearn_s * 1e3:.3f} ms total, median {common['unlearn_median_s'] * 1e3:.3f} ms/request "
        f"({common['mode']}), storage {common['storage_bytes'] / 2**20:.2f} MiB "
        f"[{common['storage_covers']}], {rho_text(engine.rho)}")
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
