"""The smallest damping that makes the damped full-data Hessian positive definite.

    python3 -m tools.damping <training flags>

Computes (or reads from the cache shared with main_NU.py / main_IJ.py) the Hessian
H = (1/n) sum_i hess l_i(w_T) of the configuration's original model and reports the
smallest kappa of the grid 0, 1e-6, ..., 1, 10 with H + kappa I positive definite (a
float64 Cholesky, by bisection; ``utils.baselines.newton.smallest_pd_damping``). On a non-convex
model the default --damping_factor 0.01 can leave H + kappa I indefinite, and NU / IJ then
solve an indefinite system (LU); rerun them with --damping_factor set to this value to
compare. Writes a JSON to --results_dir; --json prints it.
"""
import os

from utils.common import artifacts
from utils.common.experiment import Experiment, run_main
from utils.baselines.newton import DAMPING_GRID, full_hessian, smallest_pd_damping
from utils.common.options import parse_args
from utils.common.provenance import provenance
from utils.common.report import finish, info, table


def main(args):
    exp = Experiment(args)
    w_T, _ = exp.original()
    H, hessian_s, cached = full_hessian(exp, w_T)
    kappa, checked = smallest_pd_damping(H, exp.n)
    rows = [dict(kappa=k, positive_definite="yes" if ok else "no") for k, ok in sorted(checked.items())]
    result = dict(setting=exp.train_config(), grid=list(DAMPING_GRID), checked=rows, smallest_pd_damping=kappa,
                  hessian_s=hessian_s, hessian_cached=cached, provenance=provenance(exp))
    key = artifacts.config_key(exp.train_config())
    path = os.path.join(args.results_dir, f"damping-{args.dataset}-{args.model}-n{args.num_dataset}-"
                                          f"s{args.seed}-{key}.json")
    artifacts.write_json(path, result)
    verdict = (f"smallest damping with H + kappa I positive definite: {kappa:g}" if kappa is not None
               else f"H + kappa I is indefinite for every kappa up to {DAMPING_GRID[-1]:g}")
    info(f"{args.dataset}/{args.model} n={exp.n} seed={args.seed} lr={args.lr}: d={exp.fm.d}, Hessian "
         f"{'cached' if cached else f'computed in {hessian_s:.1f} s'}")
    finish(result, args.json, table(rows, ["kappa", "positive_definite"]) + f"\n{verdict}\nwritten: {path}")


if __name__ == "__main__":
    run_main(main, parse_args())
