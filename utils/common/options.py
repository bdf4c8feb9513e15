"""The one command-line parser shared by every ``main_*.py`` script.

Original flag names and defaults are kept (SPEC section 2), grouped for ``--help`` by
what they concern. ``parse_args`` validates every value before any work starts and stops
with one line naming the offending flag. This module and the four it imports (catalog,
errors, resources, hfconfig) use the standard library only, so a script checks its flags before
it imports torch: a bad flag costs a fraction of a second.
"""
import argparse
import math
import os
import tempfile
import zipfile

from utils.common.catalog import DATASETS, MODELS, model_builder
from utils.common import resources
from utils.common.errors import InputError, fail, install_interrupt_hook
from utils.proposed.hfconfig import NAMED_VARIANTS, QUIRKS, variant_name

DIRECTORY_FLAGS = ["data_dir", "log_dir", "results_dir"]
# --seed seeds torch and numpy generators, with offsets added (forget set, pool, shadows): the
# 32-bit range keeps every derived seed inside what both accept
MAX_SEED = 2 ** 32 - 1
# --epsilon: up to here the analytic Gaussian mechanism's sigma (about 0.7 Delta / sqrt(epsilon))
# is computed reliably (the epsilon it certifies matches to 1e-3; checked up to 1e15); beyond
# 1e15 dp_accounting's answer drifts, and near 1e160 its solver fails
MAX_EPSILON = 1e12
# the parts of a --hf_variant value: the paper's recursion, the authors' (all three quirks), each
# quirk; quirks '+'-joined compose ('inject_first+sample_clip')
HF_VARIANTS = list(NAMED_VARIANTS) + list(QUIRKS)


class _Parser(argparse.ArgumentParser):
    """argparse whose own errors (unknown flag, value of the wrong type) are one line, exit 2."""

    def error(self, message):
        fail(f"{message} (see --help)")


def build_parser():
    p = _Parser(
        description="Hessian-free online certified unlearning (Qiao et al., ICLR 2025) "
                    "and its baselines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    g = p.add_argument_group("training", "every flag here is part of the trained model's cache key").add_argument
    g("--epochs", type=int, default=100, help="training epochs")
    g("--lr", type=float, default=0.05, help="initial step size eta_0")
    g("--lr_decay", type=float, default=0.995, help="per-step decay: eta_t = lr * lr_decay^t")
    g("--seed", type=int, default=42, help="seed of the subset, initial weights, batch schedule and forget set (0..2**32-1)")
    g("--clip", type=float, default=5.0, help="clip the mini-batch gradient to this L2 norm")
    g("--regularization", type=float, default=1e-6, help="L2 weight lambda (adds lambda*w to the gradient)")
    g("--model", default="logistic", help=f"model: {', '.join(MODELS)}")
    g("--dataset", default="mnist", help=f"dataset: {', '.join(DATASETS)}")
    g("--batch_size", type=int, default=1000, help="training mini-batch size |B|")
    g("--num_dataset", type=int, default=1000, help="number of training samples n")
    g("--reshuffle", action="store_true", help="draw a new batch permutation every epoch (default: the same permutation in every epoch)")
    g("--pretrained", default="auto", help="resnet18 only: 'auto' (ImageNet weights from the torchvision cache or network, else random init), 'none', or a path to a state_dict file")

    g = p.add_argument_group("forget set", "the deleted samples U and the exact retraining that defines the target").add_argument
    g("--num_forget", type=int, default=10, help="number of deleted samples m")
    g("--forget_indices", default=None, help="explicit comma-separated training indices to delete (replaces the seeded choice)")
    g("--retrain_norm", choices=["batch", "mean"], default="batch",
      help="retrain normaliser: 'batch' = 1/|B_t| (paper eq. 5), 'mean' = 1/|B_t \\ U| (authors' code)")

    g = p.add_argument_group("Hessian-free method", "main_proposed.py").add_argument
    g("--batch_unlearn", action="store_true", help="apply all deletions as one summed update instead of one request at a time")
    g("--hf_candidates", default=None, help="samples that may ever be deleted: 'all' (default), 'forget' (the forget set only, as the authors), or comma-separated indices")
    g("--bank_dtype", choices=["float32", "float16", "bfloat16", "float64"], default="float32", help="storage precision of the approximator bank")
    g("--hf_mode", choices=["bank", "replay"], default="bank", help="'bank': precompute a vector per sample; 'replay': recompute the requested vectors from the training record")
    g("--hf_variant", default="paper",
      help="the recursion: 'paper' (the paper's equations, d w_T / d s); 'authors' (the recursion behind the "
           "published figures: inject_first + sample_clip + uncorrected); or some of those quirks, "
           "'+'-joined (e.g. 'inject_first+sample_clip')")
    g("--hf_curvature", choices=["hessian", "ggn"], default="hessian",
      help="curvature in J_t: the mini-batch loss Hessian (paper) or the generalised Gauss-Newton matrix")
    g("--hf_damping", type=float, default=0.0, help="kappa >= 0: the recursion contracts with I - eta_t (J_t + kappa I)")
    g("--hf_order", type=int, default=1,
      help="1: the paper's first-order update a_u; 2: adds the second Taylor term q_u (bank: per sample, "
           "cross terms left out; replay --batch_unlearn: the set's full second-order term)")
    g("--proposed_rows", default=None,
      help="main_eva.py: comma-separated Proposed variants to show as rows, each a '+'-joined label "
           "(e.g. 'paper,authors,ggn+kappa=0.1'; default: the one these flags select)")

    g = p.add_argument_group("certified release", "main_proposed.py --application").add_argument
    g("--application", action="store_true", help="add certified Gaussian noise to the unlearned model")
    g("--epsilon", type=float, default=1.0, help="privacy epsilon of the certified noise (at most 1e12)")
    g("--delta", type=float, default=0.1, help="privacy delta of the certified noise, in (0, 1)")
    g("--std", type=float, default=0.0, help="noise standard deviation override (> 0 replaces the computed sigma)")
    g("--rho", type=float, default=None, help="override the measured contraction bound rho >= sup_t ||I - eta_t J_t||")
    g("--noise_seeds", type=int, default=1, help="K noise draws of the certified release (main_proposed.py saves draws 0..K-1)")
    g("--noise_seed", type=int, default=0, help="which noise draw (0..K-1) of the certified release a script reads or reports")

    g = p.add_argument_group("certified removal", "main_CR.py (Guo et al. 2020): sigma_b from --std, or from "
                             "--epsilon, --delta and --cr_budget").add_argument
    g("--removal", choices=["newton", "hf"], default="newton",
      help="removal step: 'newton' (Hessian of the remaining data, dense solve) or 'hf' (w + a_u from the bank)")
    g("--repair", type=int, default=0, help="gradient steps on D \\ U after each removal step (each one pass)")
    g("--cr_budget", type=float, default=0.0,
      help="declared removal budget B: the sum of exact gradient residuals the noise certifies; "
           "sigma_b = c(delta) B / epsilon (0: take sigma_b from --std)")
    g("--cr_tol", type=float, default=1e-6, help="gradient-norm tolerance of the exact optimum (training and retrains)")
    g("--unit_norm", action="store_true", help="scale every input to unit L2 norm (every method of these flags)")

    g = p.add_argument_group("baselines", "main_NU.py, main_IJ.py, main_finetune.py, main_neggrad.py").add_argument
    g("--damping_factor", type=float, default=1e-2, help="damping kappa added to the Hessian (NU, IJ)")
    g("--hessian_solver", choices=["auto", "cholesky", "lu"], default="auto",
      help="NU/IJ solve: 'cholesky' stops when the damped Hessian is not positive definite; 'lu' solves indefinite systems too; 'auto' = cholesky, else lu with a notice")
    g("--finetune_epochs", type=int, default=15, help="epochs of fine-tuning on D \\ U (main_finetune.py)")
    g("--neggrad_epochs", type=int, default=2, help="epochs of gradient ascent on U (main_neggrad.py)")
    g("--neggrad_batch", type=int, default=50, help="batch size of gradient ascent on U (main_neggrad.py)")
    g("--neggrad_lr_scale", type=float, default=0.1, help="NegGrad step = this * lr (main_neggrad.py)")

    g = p.add_argument_group("audits", "membership inference: main_MIAU.py (MIA-U), main_MIAL.py (LiRA)").add_argument
    g("--attack_model", choices=["LR", "MLP"], default="LR", help="MIA-U attack classifier")
    g("--features", "--method", dest="method", default="direct_diff",
      choices=["direct_diff", "sorted_diff", "direct_concat", "sorted_concat", "l2_distance"],
      help="MIA-U feature construction (--method: the same flag under its original name, which "
           "the stored keys and result files keep)")
    g("--n_shadows", type=int, default=16, help="LiRA shadow models")
    g("--n_nonmembers", type=int, default=0, help="LiRA pool non-members (0 = n, or all available when fewer)")
    g("--fix_variance", action="store_true", help="LiRA: one global variance for the IN and OUT Gaussians")
    g("--log_scale", action="store_true", help="ROC figures on log-log axes")

    g = p.add_argument_group("evaluation", "test set and main_eva.py").add_argument
    g("--test_train_rate", type=float, default=0.4, help="test set size as a fraction of n, in (0, 1]")
    g("--bs", type=int, default=2048, help="evaluation batch size")
    g("--aggregate", action="store_true", help="main_eva.py: mean +- std over the seeds found in results/")
    g("--floor", choices=["perturb", "float64", "threads"], default="perturb",
      help="noise floor of the distance: a retrain from w_0 perturbed by a relative 1e-7, in float64, or with another thread count")

    g = p.add_argument_group("input/output and infrastructure").add_argument
    g("--gpu", type=int, default=1, help="CUDA device index; -1 = CPU (falls back to CPU when CUDA is absent)")
    g("--mem_budget_mb", type=float, default=1024.0, help="memory budget for vectorised Hessian-vector products and Hessians (MB)")
    g("--dist_timeout", type=float, default=300.0, help="torchrun: seconds a rank waits for the others before the run stops")
    g("--data_dir", default="./data", help="where dataset files are read from / downloaded to (decoded copies go to <data_dir>/cache/)")
    g("--log_dir", default="./log", help="models, banks and metrics")
    g("--results_dir", default="./results", help="tables and figures")
    g("--json", action="store_true", help="print the final summary as one JSON object on stdout")
    g("--quiet", action="store_true", help="no progress bars")
    return p


def check_hf_order(args):
    """InputError for a --hf_order other than 1 or 2, or order 2 with a recursion that is not
    the paper's (no derivative of w_T, so no second derivative to add)."""
    if args.hf_order not in (1, 2):
        raise InputError(f"--hf_order: must be 1 (the paper's first-order update) or 2 (with the second "
                         f"Taylor term), got {args.hf_order}")
    if args.hf_order == 2 and (args.hf_variant != "paper" or args.hf_curvature != "hessian" or args.hf_damping):
        raise InputError("--hf_order 2 is derived for the paper's recursion only (the second derivative of "
                         "w_T): drop --hf_variant, --hf_curvature and --hf_damping")


def combine_variants(parts, where):
    """The one variant name (``hfconfig.variant_name``) of '+'-joined variant ``parts`` (each
    one of HF_VARIANTS): their quirks together, 'authors' + a quirk being 'authors'. InputError
    starting with ``where`` for 'paper' (no quirk) beside a quirk, a contradiction."""
    quirks = [q for part in parts for q in NAMED_VARIANTS.get(part, (part,))]
    if "paper" in parts and quirks:
        other = next(p for p in parts if p != "paper")
        raise InputError(f"{where}: 'paper' (the paper's recursion, no quirk) contradicts {other!r}; "
                         f"keep one of them")
    return variant_name(quirks)


def parse_hf_label(text, where="--proposed_rows"):
    """'authors+ggn+kappa=0.1' -> {'hf_variant': 'authors', 'hf_curvature': 'ggn', 'hf_damping': 0.1}
    (the flags a Proposed row label stands for; 'paper' alone is the default recursion). Variant
    parts compose (``combine_variants``: 'inject_first+sample_clip+uncorrected' is 'authors');
    a part repeated with the same meaning is harmless. InputError starting with ``where`` (the
    flag or variable the label came from) on an unknown part or a contradiction: 'paper' with a
    quirk, two curvatures, two dampings, two orders ('order1', 'order2')."""
    variants, curvatures, dampings, orders = [], [], [], []
    for token in text.split("+"):
        if token in ("order1", "order2"):
            orders.append(int(token[-1]))
        elif token in HF_VARIANTS:
            variants.append(token)
        elif token in ("hessian", "ggn"):
            curvatures.append(token)
        elif token.startswith("kappa="):
            try:
                value = float(token[len("kappa="):])
            except ValueError:
                value = -1.0
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{where}: {token!r} needs a non-negative number")
            dampings.append(value)
        else:
            raise InputError(f"{where}: unknown part {token!r} of {text!r}; use variants "
                             f"({', '.join(HF_VARIANTS)}), 'hessian' or 'ggn', 'kappa=<number>' and 'order2', joined by '+'")
    for what, values in [("curvatures", curvatures), ("dampings", [f"kappa={v:g}" for v in dampings]),
                         ("orders", [f"order{k}" for k in orders])]:
        if len(set(values)) > 1:
            raise InputError(f"{where}: {text!r} names two {what}, {values[0]!r} and "
                             f"{next(v for v in values if v != values[0])!r}; a label means one variant")
    flags = {"hf_variant": combine_variants(variants, f"{where}: {text!r}"),
             "hf_curvature": curvatures[0] if curvatures else "hessian",
             "hf_damping": dampings[0] if dampings else 0.0,
             "hf_order": orders[0] if orders else 1}
    if flags["hf_order"] == 2 and (flags["hf_variant"] != "paper" or flags["hf_curvature"] != "hessian"
                                   or flags["hf_damping"]):
        raise InputError(f"{where}: {text!r}: order2 is derived for the paper's recursion only; "
                         f"drop the variant, 'ggn' and 'kappa=' from this label")
    return flags


def parse_hf_labels(labels, where="--proposed_rows", example="'paper,authors'"):
    """Labels -> the flags of each (``parse_hf_label``); InputError starting with ``where``
    when there is none (``example`` shows a list) or when two labels name the same variant."""
    if not labels:
        raise InputError(f"{where}: expected at least one label, e.g. {example}")
    seen = {}
    for label in labels:
        flags = parse_hf_label(label, where)
        key = tuple(flags.values())
        if key in seen:
            raise InputError(f"{where}: {seen[key]!r} and {label!r} name the same variant; list it once")
        seen[key] = label
    return [dict(zip(("hf_variant", "hf_curvature", "hf_damping", "hf_order"), key)) for key in seen]


def parse_indices(flag, text):
    """'3,5,9' -> [3, 5, 9] (sorted, distinct); InputError naming ``flag`` on anything else."""
    try:
        idx = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise InputError(f"{flag}: expected comma-separated integers, got {text!r}")
    if len(set(idx)) != len(idx):
        raise InputError(f"{flag}: indices must be distinct")
    return sorted(idx)


def check_in_range(flag, idx, n):
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise InputError(f"{flag}: {bad[:5]} outside range(num_dataset={n})")


def check_candidates_cover(args, forget):
    """InputError naming --hf_candidates when an explicit candidate list (bank mode) misses a
    sample of the forget set ``forget`` (ints): that sample would get no approximator."""
    if args.hf_mode != "bank" or args.hf_candidate_list is None:
        return
    missing = sorted(set(int(u) for u in forget) - set(args.hf_candidate_list))
    if missing:
        raise InputError(f"--hf_candidates: forget-set samples {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                         f"are not candidates and would have no approximator; add them, or use "
                         f"--hf_candidates all (or forget)")


def check_directory(flag, path):
    """InputError naming ``flag`` unless ``path`` is a writable directory or can be created as one.

    Writability is checked with os.access and with a real probe file (os.access alone says yes
    to root and on read-only mounts), in ``path`` or in its nearest existing ancestor.
    """
    where = os.path.abspath(path)
    while not os.path.lexists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    if not os.path.isdir(where):
        what = "is not a directory" if where == os.path.abspath(path) else f"cannot be created: {where} is not a directory"
        raise InputError(f"--{flag}: {path} {what}")
    reason = None if os.access(where, os.W_OK | os.X_OK) else "permission denied"
    if reason is None:
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=where)
            os.close(fd)
            os.remove(probe)
        except OSError as e:
            reason = e.strerror or type(e).__name__
    if reason is not None:
        what = "is not writable" if where == os.path.abspath(path) else f"cannot be created in {where}"
        raise InputError(f"--{flag}: {path} {what} ({reason}); choose another directory")


def check_pretrained(args):
    """--pretrained names a file only for the model that loads one (resnet18), and that file
    must look like a torch.save archive (a zip, or a pickle for the legacy format); the full
    check (a state_dict that fits the network) runs when the model is built, before training."""
    if args.pretrained in ("auto", "none"):
        return
    if args.model != "resnet18":
        raise InputError(f"--pretrained: only resnet18 loads pretrained weights; the {args.model} model "
                         f"would ignore {args.pretrained} (drop the flag)")
    if not os.path.isfile(args.pretrained):
        raise InputError(f"--pretrained: file {args.pretrained} not found (or 'auto' / 'none')")
    try:
        with open(args.pretrained, "rb") as f:
            head = f.read(2)
        archive = zipfile.is_zipfile(args.pretrained)
    except OSError as e:
        raise InputError(f"--pretrained: cannot read {args.pretrained} ({e.strerror})")
    if not archive and not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        raise InputError(f"--pretrained: {args.pretrained} is not a torch.save file; save one with "
                         f"torch.save(model.state_dict(), path)")


def check_schedule_fits(args):
    """The batch schedule (epochs * ceil(n / batch size) index batches, kept in memory and
    stored with the original model) must fit the memory available: refused before torch loads."""
    need = resources.schedule_bytes(args.num_dataset, args.batch_size, args.epochs)
    T = resources.steps(args.num_dataset, args.batch_size, args.epochs)
    resources.check_memory(f"--epochs {args.epochs}: the batch schedule of {T:,} steps (n={args.num_dataset}, "
                           f"--batch_size {args.batch_size})", need,
                           "lower --epochs (or raise --batch_size)")


def check_cr(args):
    """main_CR.py's flags (InputError naming the flag): the softmax logistic model, the paper's
    retrain normaliser and recursion, and exactly one of --std and --cr_budget."""
    if args.model != "logistic":
        raise InputError(f"--model: certified removal needs the convex logistic model, got {args.model}")
    if args.retrain_norm != "batch":
        raise InputError("--retrain_norm: certified removal's objective keeps the regulariser of the n trained "
                         "samples (normaliser |B_t|); use --retrain_norm batch")
    if (args.hf_variant, args.hf_curvature, args.hf_damping) != ("paper", "hessian", 0.0):
        raise InputError("--hf_variant/--hf_curvature/--hf_damping: certified removal's hf step uses the "
                         "paper's recursion; drop these flags")
    if args.hf_order == 2 and args.removal != "hf":
        raise InputError("--hf_order 2: the second-order term is a Hessian-free step; use it with --removal hf")
    if (args.std > 0) == (args.cr_budget > 0):
        raise InputError("--cr_budget / --std: give exactly one: the declared removal budget "
                         "(sigma_b = c(delta) B / epsilon) or sigma_b itself")
    if not 0 < args.cr_tol < 1:
        raise InputError(f"--cr_tol: must be in (0, 1), got {args.cr_tol}")
    if args.repair > 10000:
        raise InputError(f"--repair: {args.repair} passes over the data is beyond any use; at most 10000")
    return args


def validate(args):
    """Check every value; raise InputError naming the flag. Fills derived fields:
    forget_list and hf_candidate_list (sorted ints, or None)."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"--{name}: must be a finite number, got {value}")
    if args.dataset not in DATASETS:
        raise InputError(f"--dataset: unknown dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    if args.model not in MODELS:
        raise InputError(f"--model: unknown model {args.model!r}; choose from {', '.join(MODELS)}")
    info = DATASETS[args.dataset]
    builder, why = model_builder(args.model, info)
    if builder is None:
        raise InputError(f"--model: {args.model} does not fit dataset {args.dataset}: {why}")
    positive_ints = ["epochs", "batch_size", "num_dataset", "bs", "n_shadows",
                     "neggrad_batch", "noise_seeds"]
    for name in positive_ints:
        if getattr(args, name) <= 0:
            raise InputError(f"--{name}: must be a positive integer, got {getattr(args, name)}")
    for name in ["lr", "epsilon", "clip", "mem_budget_mb", "dist_timeout"]:
        if not getattr(args, name) > 0:
            raise InputError(f"--{name}: must be positive, got {getattr(args, name)}")
    if not 0 <= args.seed <= MAX_SEED:
        raise InputError(f"--seed: must be an integer in 0..{MAX_SEED} (2**32 - 1), got {args.seed}")
    if args.epsilon > MAX_EPSILON:
        raise InputError(f"--epsilon: must be at most {MAX_EPSILON:g} (the analytic Gaussian mechanism's sigma "
                         f"is not computed reliably beyond; sigma is then a millionth of Delta), "
                         f"got {args.epsilon:g}")
    if not 0 < args.lr_decay <= 1:
        raise InputError(f"--lr_decay: must be in (0, 1], got {args.lr_decay}")
    if args.noise_seed < 0:
        raise InputError(f"--noise_seed: must be a non-negative draw index, got {args.noise_seed}")
    if args.noise_seed >= args.noise_seeds:
        raise InputError(f"--noise_seed: draw {args.noise_seed} is not among the --noise_seeds "
                         f"{args.noise_seeds} draws 0..{args.noise_seeds - 1}; raise --noise_seeds")
    if not 0 < args.delta < 1:
        raise InputError(f"--delta: must be in (0, 1), got {args.delta}")
    if args.regularization < 0 or args.damping_factor < 0 or args.std < 0 or args.hf_damping < 0:
        raise InputError("--regularization, --damping_factor, --hf_damping and --std must be non-negative")
    if not 0 < args.test_train_rate <= 1:
        raise InputError(f"--test_train_rate: must be in (0, 1], got {args.test_train_rate}")
    if int(args.test_train_rate * args.num_dataset) < 1:
        raise InputError(f"--test_train_rate: {args.test_train_rate} * n = {args.test_train_rate * args.num_dataset:g} "
                         f"leaves no test sample; raise it or --num_dataset")
    if args.n_nonmembers < 0:
        raise InputError(f"--n_nonmembers: must be non-negative, got {args.n_nonmembers}")
    if args.finetune_epochs < 0 or args.neggrad_epochs < 0:
        raise InputError("--finetune_epochs and --neggrad_epochs must be non-negative")
    unknown = [part for part in args.hf_variant.split("+") if part not in HF_VARIANTS]
    if unknown:
        raise InputError(f"--hf_variant: unknown part {unknown[0]!r} of {args.hf_variant!r}; use "
                         f"{', '.join(HF_VARIANTS)}, quirks joined by '+'")
    args.hf_variant = combine_variants(args.hf_variant.split("+"), f"--hf_variant {args.hf_variant!r}")
    check_hf_order(args)
    if args.repair < 0 or args.cr_budget < 0:
        raise InputError("--repair and --cr_budget must be non-negative")
    if args.rho is not None and not args.rho > 0:
        raise InputError(f"--rho: must be positive, got {args.rho}")
    check_pretrained(args)
    n_max = info["train_size"]
    if args.num_dataset > n_max:
        raise InputError(f"--num_dataset: {args.num_dataset} exceeds the {n_max} training samples of {args.dataset}")
    args.forget_list = None
    if args.forget_indices is not None:
        args.forget_list = parse_indices("--forget_indices", args.forget_indices)
        check_in_range("--forget_indices", args.forget_list, args.num_dataset)
        args.num_forget = len(args.forget_list)
    if args.forget_list == []:
        raise InputError("--forget_indices: the list is empty; name at least one training index to delete")
    if args.num_forget < 1 or args.num_forget >= args.num_dataset:
        raise InputError(f"--num_forget: need 1 <= m < n = {args.num_dataset}, got {args.num_forget} "
                         f"(there is nothing to unlearn with m = 0)")
    check_schedule_fits(args)
    args.hf_candidate_list = None
    if args.hf_candidates not in (None, "all", "forget"):
        args.hf_candidate_list = parse_indices("--hf_candidates", args.hf_candidates)
        check_in_range("--hf_candidates", args.hf_candidate_list, args.num_dataset)
        if args.forget_list is not None:
            check_candidates_cover(args, args.forget_list)
    args.proposed_row_flags = None
    if args.proposed_rows is not None:
        args.proposed_row_flags = parse_hf_labels([x.strip() for x in args.proposed_rows.split(",") if x.strip()])
    for name in DIRECTORY_FLAGS:
        check_directory(name, getattr(args, name))
    args.num_classes = info["classes"]
    args.num_channels = info["channels"]
    return args


def parse_args(argv=None, parser=None):
    """Parse and validate; on bad input print one line and exit 2. From here on, Ctrl-C
    stops the script with one line and exit status 130 (``utils.common.errors``)."""
    install_interrupt_hook()
    args = (parser or build_parser()).parse_args(argv)
    try:
        return validate(args)
    except InputError as e:
        fail(str(e))


if __name__ == "__main__":
    # `python3 -m utils.common.options LABEL`: the flags of a Proposed row label, one per line (none
    # for 'paper'); `... --variants LABEL...`: check a sweep's VARIANTS labels (all of them, before
    # its first command), print nothing. The sweeps read labels through this one parser.
    import sys
    argv = sys.argv[1:]
    check = argv[:1] == ["--variants"]
    try:
        if check:
            parse_hf_labels(argv[1:], "VARIANTS", example='"paper authors" (labels separated by spaces)')
        elif len(argv) != 1:
            raise InputError("usage: python3 -m utils.common.options LABEL | --variants LABEL...")
        else:
            label_flags = parse_hf_label(argv[0], "label")
    except InputError as e:
        fail(str(e))
    if not check and label_flags != parse_hf_label("paper"):
        for flag, value in label_flags.items():
            if flag == "hf_order" and value == 1:
                continue                        # the default order: the flag is left out, as in the keys
            print(f"--{flag}\n{value:g}" if isinstance(value, float) else f"--{flag}\n{value}")
