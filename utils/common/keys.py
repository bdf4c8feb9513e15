"""Which flags and inputs key which stored files: the one table the key functions read.

Every value that changes a stored number is part of the key of the file that holds it, so
two settings never share (or overwrite) a file and a rerun finds exactly what it cached.
``FAMILIES[name]`` lists the flags whose values a key hashes directly (a method's come from
the method table, ``utils.common.methods``); ``DERIVED[name]`` lists the inputs a key hashes that
are computed from flags (the data actually loaded, the device type, the initial weights, the
forget set), with the flags they come from. Files
nested in a keyed folder inherit its key: everything under a training folder is keyed by
"train", every method file of a deletion set by "forget" too.

``FLAGS`` classifies every parser flag: ("keys", families) or ("nothing", why it changes
no stored number). tests/test_keys.py fails when a parser flag is missing here or when a
claim disagrees with FAMILIES / DERIVED.
"""
import hashlib

import torch

from utils.common import methods

# family -> flags hashed directly into its key (read by the key functions themselves)
FAMILIES = {
    # <log_dir>/<dataset>-<model>-n-s-<key>/: original.pt, manifest.json, cache/, forget-*/
    "train": ["dataset", "model", "num_dataset", "batch_size", "epochs", "lr", "lr_decay",
              "seed", "clip", "regularization", "reshuffle", "pretrained", "unit_norm"],
    # <train dir>/forget-m<m>-<key>/: every method's model and metrics for one U and test set
    "forget": ["test_train_rate"],
    # <forget dir>/<Method>-<key>.pt/.json: one family per row of the method table
    **{m.name: list(m.flags) for m in methods.METHOD_TABLE},
    # <train dir>/cache/<kind>-<key>
    "hfbank": ["retrain_norm", "bank_dtype", "hf_variant", "hf_curvature", "hf_damping", "hf_order"],
    "hessian": [],
    # certified removal's trained model: b, the SGD run with b / n, its exact optimum
    "cr-original": list(methods.CR_NOISE_FLAGS),
    "ij-factor": ["damping_factor", "hessian_solver"],
    "lira-shadows": ["n_shadows"],
    # U-LiRA shadows (Original, Retrain, independent Retrain) and their Proposed unlearning
    "ulira-shadows": ["n_shadows", "retrain_norm"],
    "ulira-proposed": ["n_shadows", "retrain_norm", "hf_variant", "hf_curvature", "hf_damping"],
    # <results_dir>/MIAU-* and MIAL-* result files (also keyed by train, forget and every method)
    "mia": ["attack_model", "method", "n_shadows", "fix_variance", "n_nonmembers"],
    # <results_dir>/eva-* result files (also keyed by train, forget and every method)
    "eva": ["proposed_rows"],
}
METHODS = methods.names()

# family -> {input hashed into its key: the flags it is computed from}
DERIVED = {
    "train": {"data": ["data_dir"], "device": ["gpu"], "init": ["pretrained", "model", "seed"]},
    "forget": {"U": ["num_forget", "forget_indices", "seed"], "test": ["data_dir", "test_train_rate"]},
    "hfbank": {"candidates": ["hf_candidates"]},
    "lira-shadows": {"pool": ["n_nonmembers", "data_dir"]},
    "ulira-shadows": {"U": ["num_forget", "forget_indices", "seed"]},
    "ulira-proposed": {"U": ["num_forget", "forget_indices", "seed"]},
}


def keys(*families):
    return ("keys", families)


def nothing(why):
    return ("nothing", why)


# Every parser flag. Flags named here that a parser does not (yet) define are allowed.
FLAGS = {
    "epochs": keys("train"), "lr": keys("train"), "lr_decay": keys("train"),
    "seed": keys("train", "forget", "ulira-shadows", "ulira-proposed"),
    "clip": keys("train"), "regularization": keys("train"), "model": keys("train"),
    "dataset": keys("train"), "batch_size": keys("train"), "num_dataset": keys("train"),
    "reshuffle": keys("train"), "pretrained": keys("train"),
    "data_dir": keys("train", "forget", "lira-shadows"),
    "gpu": keys("train"),
    "test_train_rate": keys("forget"),
    "num_forget": keys("forget", "ulira-shadows", "ulira-proposed"),
    "forget_indices": keys("forget", "ulira-shadows", "ulira-proposed"),
    "retrain_norm": keys("Retrain", "Proposed", "Proposed_noise", "hfbank", "Floor", "ulira-shadows",
                         "ulira-proposed"),
    "batch_unlearn": keys("Proposed", "Proposed_noise"),
    "bank_dtype": keys("Proposed", "Proposed_noise", "hfbank"),
    "hf_mode": keys("Proposed", "Proposed_noise"),
    "hf_candidates": keys("Proposed", "Proposed_noise", "hfbank"),
    "hf_variant": keys("Proposed", "Proposed_noise", "hfbank", "ulira-proposed"),
    "hf_curvature": keys("Proposed", "Proposed_noise", "hfbank", "ulira-proposed"),
    "hf_damping": keys("Proposed", "Proposed_noise", "hfbank", "ulira-proposed"),
    "hf_order": keys("Proposed", "Proposed_noise", "hfbank", "CR"),
    "proposed_rows": keys("eva"),
    "epsilon": keys("Proposed_noise", "CR", "CR_Retrain", "cr-original"),
    "delta": keys("Proposed_noise", "CR", "CR_Retrain", "cr-original"),
    "std": keys("Proposed_noise", "CR", "CR_Retrain", "cr-original"),
    "cr_budget": keys("CR", "CR_Retrain", "cr-original"), "cr_tol": keys("CR", "CR_Retrain", "cr-original"),
    "removal": keys("CR"), "repair": keys("CR"),
    "unit_norm": keys("train"),
    "rho": keys("Proposed_noise"),
    "noise_seed": keys("Proposed_noise"),
    "noise_seeds": nothing("how many draws are saved: draw k is the k-th vector of one seeded stream "
                           "whatever K, and the spread stored with it records its K"),
    "floor": keys("Floor"),
    "damping_factor": keys("NU", "IJ", "ij-factor"), "hessian_solver": keys("NU", "IJ", "ij-factor"),
    "finetune_epochs": keys("Finetune"),
    "neggrad_epochs": keys("NegGrad"), "neggrad_batch": keys("NegGrad"), "neggrad_lr_scale": keys("NegGrad"),
    "attack_model": keys("mia"), "method": keys("mia"), "fix_variance": keys("mia"),
    "n_shadows": keys("lira-shadows", "mia", "ulira-shadows", "ulira-proposed"),
    "n_nonmembers": keys("lira-shadows", "mia"),
    "application": nothing("selects whether Proposed_noise is made; that file is keyed by the noise flags"),
    "mem_budget_mb": nothing("only how Hessian-vector products are chunked; the same products"),
    "bs": nothing("evaluation batch size: the same accuracies and losses"),
    "log_scale": nothing("axes of the ROC figures only; every number comes from the same scores"),
    "aggregate": nothing("main_eva.py mode: reads the stored results, writes the summary of all of them"),
    "log_dir": nothing("where artefacts live, not what they hold"),
    "results_dir": nothing("where results live, not what they hold"),
    "json": nothing("output format of the summary"),
    "quiet": nothing("progress bars"),
    "dist_timeout": nothing("how long a rank waits for the others; computes nothing"),
}


# Flags added after files keyed without them existed: at these values they are left out of
# every key, so those files (computed with exactly these values) stay valid.
KEYED_WHEN_CHANGED = {"unit_norm": False, "hf_variant": "paper", "hf_curvature": "hessian", "hf_damping": 0.0,
                      "hf_order": 1, "proposed_rows": None}


def keyed(flags, args):
    """{flag: value} of ``flags`` for a key: every flag, except those of KEYED_WHEN_CHANGED
    that hold their original value."""
    out = {}
    for f in flags:
        v = getattr(args, f)
        if f in KEYED_WHEN_CHANGED and v == KEYED_WHEN_CHANGED[f]:
            continue
        out[f] = v
    return out


def values(args, family):
    """{flag: value} of the flags that key ``family``."""
    return keyed(FAMILIES[family], args)


def digest(*tensors):
    """SHA-256 (first 16 hex digits) of tensors' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
