"""Newton step on the remaining data (Sekhari et al. 2021), SPEC section 9.

    python3 main_NU.py --model logistic --dataset mnist ... --damping_factor 0.01

    H_rest = (n H - m H_U) / (n - m) + kappa I;   w = w_T + (1/(n-m)) H_rest^{-1} sum_{u in U} grad l_u

Trains (or reuses) the original model, computes (or reuses) the full-data Hessian, applies
the step and writes the unlearned model and its metrics under --log_dir.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

from utils.common.experiment import run_baseline, run_main
from utils.baselines.newton import unlearn_nu

if __name__ == "__main__":
    run_main(run_baseline, "NU", unlearn_nu, ARGS)
