"""The one command-line parser shared by every ``main_*.py`` script.

Original flag names and defaults are kept (SPEC section 2). ``parse_args`` validates
every value before any work starts and stops with one line naming the offending flag.
"""
import argparse

from utils.catalog import DATASETS, MODELS, model_fits
from utils.errors import InputError, fail


def build_parser():
    p = argparse.ArgumentParser(
        description="Hessian-free online certified unlearning (Qiao et al., ICLR 2025) "
                    "and its baselines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    # --- training (every flag here is part of the trained model's cache key) ---
    a("--epochs", type=int, default=100, help="training epochs")
    a("--lr", type=float, default=0.05, help="initial step size eta_0")
    a("--lr_decay", type=float, default=0.995, help="per-step decay: eta_t = lr * lr_decay^t")
    a("--seed", type=int, default=42, help="seed of the subset, initial weights, batch schedule and forget set")
    a("--clip", type=float, default=5.0, help="clip the mini-batch gradient to this L2 norm")
    a("--regularization", type=float, default=1e-6, help="L2 weight lambda (adds lambda*w to the gradient)")
    a("--model", default="logistic", help=f"model: {', '.join(MODELS)}")
    a("--dataset", default="mnist", help=f"dataset: {', '.join(DATASETS)}")
    a("--batch_size", type=int, default=1000, help="training mini-batch size |B|")
    a("--num_dataset", type=int, default=1000, help="number of training samples n")
    a("--test_train_rate", type=float, default=0.4, help="test set size as a fraction of n")
    a("--reshuffle", action="store_true", help="draw a new batch permutation every epoch (default: the same permutation in every epoch)")
    a("--pretrained", default="auto", help="resnet18 only: 'auto' (ImageNet weights from the torchvision cache or network, else random init), 'none', or a path to a state_dict file")
    # --- deletion ---
    a("--num_forget", type=int, default=10, help="number of deleted samples m")
    a("--forget_indices", default=None, help="explicit comma-separated training indices to delete (replaces the seeded choice)")
    a("--retrain_norm", choices=["batch", "mean"], default="batch",
      help="retrain normaliser: 'batch' = 1/|B_t| (paper eq. 5), 'mean' = 1/|B_t \\ U| (authors' code)")
    # --- Hessian-free method ---
    a("--batch_unlearn", action="store_true", help="apply all deletions as one summed update instead of one request at a time")
    a("--mem_budget_mb", type=float, default=1024.0, help="memory budget for vectorised Hessian-vector products (MB)")
    a("--hf_candidates", default=None, help="samples that may ever be deleted: 'all' (default), 'forget' (the forget set only, as the authors), or comma-separated indices")
    a("--bank_dtype", choices=["float32", "float16", "bfloat16", "float64"], default="float32", help="storage precision of the approximator bank")
    a("--hf_mode", choices=["bank", "replay"], default="bank", help="'bank': precompute a vector per sample; 'replay': recompute the requested vectors from the training record")
    # --- certified noise ---
    a("--application", action="store_true", help="add certified Gaussian noise to the unlearned model")
    a("--epsilon", type=float, default=1.0, help="privacy epsilon of the certified noise")
    a("--delta", type=float, default=0.1, help="privacy delta of the certified noise, in (0, 1)")
    a("--std", type=float, default=0.0, help="noise standard deviation override (> 0 replaces the computed sigma)")
    a("--rho", type=float, default=None, help="override the measured contraction bound rho >= sup_t ||I - eta_t J_t||")
    a("--noise_seeds", type=int, default=1, help="K noise draws of the certified release (main_proposed.py saves draws 0..K-1)")
    a("--noise_seed", type=int, default=0, help="which noise draw (0..K-1) of the certified release a script reads or reports")
    # --- second-order baselines ---
    a("--damping_factor", type=float, default=1e-2, help="damping kappa added to the Hessian (NU, IJ)")
    a("--hessian_solver", choices=["auto", "cholesky", "lu"], default="auto",
      help="NU/IJ solve: 'cholesky' stops when the damped Hessian is not positive definite; 'lu' solves indefinite systems too; 'auto' = cholesky, else lu with a notice")
    # --- large-model baselines ---
    a("--finetune_epochs", type=int, default=15, help="epochs of fine-tuning on D \\ U (main_finetune.py)")
    a("--neggrad_epochs", type=int, default=2, help="epochs of gradient ascent on U (main_neggrad.py)")
    a("--neggrad_batch", type=int, default=50, help="batch size of gradient ascent on U (main_neggrad.py)")
    a("--neggrad_lr_scale", type=float, default=0.1, help="NegGrad step = this * lr (main_neggrad.py)")
    # --- membership inference ---
    a("--attack_model", choices=["LR", "MLP"], default="LR", help="MIA-U attack classifier")
    a("--method", choices=["direct_diff", "sorted_diff", "direct_concat", "sorted_concat", "l2_distance"],
      default="direct_diff", help="MIA-U feature construction")
    a("--n_shadows", type=int, default=16, help="LiRA shadow models")
    a("--n_nonmembers", type=int, default=0, help="LiRA pool non-members (0 = n, or all available when fewer)")
    a("--fix_variance", action="store_true", help="LiRA: one global variance for the IN and OUT Gaussians")
    a("--log_scale", action="store_true", help="ROC figures on log-log axes")
    # --- evaluation ---
    a("--aggregate", action="store_true", help="main_eva.py: mean +- std over the seeds found in results/")
    a("--floor", choices=["perturb", "float64", "threads"], default="perturb",
      help="noise floor of the distance: a retrain from w_0 perturbed by a relative 1e-7, in float64, or with another thread count")
    # --- infrastructure ---
    a("--gpu", type=int, default=1, help="CUDA device index; -1 = CPU (falls back to CPU when CUDA is absent)")
    a("--bs", type=int, default=2048, help="evaluation batch size")
    a("--data_dir", default="./data", help="where dataset files are read from / downloaded to")
    a("--log_dir", default="./log", help="models, banks and metrics")
    a("--results_dir", default="./results", help="tables and figures")
    a("--json", action="store_true", help="print the final summary as one JSON object on stdout")
    a("--quiet", action="store_true", help="no progress bars")
    return p


def parse_forget_indices(text):
    """'3,5,9' -> [3, 5, 9]; raises InputError on anything else."""
    try:
        idx = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise InputError(f"--forget_indices: expected comma-separated integers, got {text!r}")
    if len(set(idx)) != len(idx):
        raise InputError("--forget_indices: indices must be distinct")
    return sorted(idx)


def validate(args):
    """Check every value; raise InputError naming the flag. Fills derived fields."""
    if args.dataset not in DATASETS:
        raise InputError(f"--dataset: unknown dataset {args.dataset!r}; choose from {', '.join(DATASETS)}")
    if args.model not in MODELS:
        raise InputError(f"--model: unknown model {args.model!r}; choose from {', '.join(MODELS)}")
    info = DATASETS[args.dataset]
    ok, why = model_fits(args.model, info)
    if not ok:
        raise InputError(f"--model: {args.model} does not fit dataset {args.dataset}: {why}")
    positive_ints = ["epochs", "batch_size", "num_dataset", "bs", "n_shadows",
                     "neggrad_batch", "noise_seeds"]
    for name in positive_ints:
        if getattr(args, name) <= 0:
            raise InputError(f"--{name}: must be a positive integer, got {getattr(args, name)}")
    for name in ["lr", "epsilon", "clip", "mem_budget_mb"]:
        if not getattr(args, name) > 0:
            raise InputError(f"--{name}: must be positive, got {getattr(args, name)}")
    if not 0 < args.lr_decay <= 1:
        raise InputError(f"--lr_decay: must be in (0, 1], got {args.lr_decay}")
    if args.noise_seed < 0:
        raise InputError(f"--noise_seed: must be a non-negative draw index, got {args.noise_seed}")
    if not 0 < args.delta < 1:
        raise InputError(f"--delta: must be in (0, 1), got {args.delta}")
    if args.regularization < 0 or args.damping_factor < 0 or args.std < 0:
        raise InputError("--regularization, --damping_factor and --std must be non-negative")
    if not 0 < args.test_train_rate:
        raise InputError(f"--test_train_rate: must be positive, got {args.test_train_rate}")
    if args.n_nonmembers < 0:
        raise InputError(f"--n_nonmembers: must be non-negative, got {args.n_nonmembers}")
    if args.finetune_epochs < 0 or args.neggrad_epochs < 0:
        raise InputError("--finetune_epochs and --neggrad_epochs must be non-negative")
    if args.rho is not None and not args.rho > 0:
        raise InputError(f"--rho: must be positive, got {args.rho}")
    n_max = info["train_size"]
    if args.num_dataset > n_max:
        raise InputError(f"--num_dataset: {args.num_dataset} exceeds the {n_max} training samples of {args.dataset}")
    if args.forget_indices is not None:
        idx = parse_forget_indices(args.forget_indices)
        bad = [i for i in idx if not 0 <= i < args.num_dataset]
        if bad:
            raise InputError(f"--forget_indices: {bad[:5]} outside range(num_dataset={args.num_dataset})")
        args.forget_list = idx
        args.num_forget = len(idx)
    else:
        args.forget_list = None
    if args.num_forget < 0 or args.num_forget >= args.num_dataset:
        raise InputError(f"--num_forget: need 0 <= m < n = {args.num_dataset}, got {args.num_forget}")
    if args.hf_candidates not in (None, "all", "forget"):
        parse_forget_indices(args.hf_candidates)
    args.num_classes = info["classes"]
    args.num_channels = info["channels"]
    return args


def parse_args(argv=None, parser=None):
    """Parse and validate; on bad input print one line and exit 2."""
    args = (parser or build_parser()).parse_args(argv)
    try:
        return validate(args)
    except InputError as e:
        fail(str(e))
