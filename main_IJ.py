"""Infinitesimal jackknife (Suriyakumar & Wilson 2022), SPEC section 9.

    python3 main_IJ.py --model logistic --dataset mnist ... --damping_factor 0.01

    w = w_T + (1/n) (H + kappa I)^{-1} sum_{u in U} grad l_u

Trains (or reuses) the original model, computes (or reuses) the Cholesky factor of the
damped full-data Hessian, applies the step and writes the unlearned model and its metrics.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

from utils.common.experiment import run_baseline, run_main
from utils.baselines.newton import unlearn_ij

if __name__ == "__main__":
    run_main(run_baseline, "IJ", unlearn_ij, ARGS)
