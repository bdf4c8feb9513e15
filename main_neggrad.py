"""NegGrad baseline: gradient ascent on the loss of U from w_T (2 epochs, batch 50, step 0.1 * lr in the paper)."""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

from utils.baselines.firstorder import NegGradConfig, neggrad
from utils.common.experiment import run_baseline, run_main


def unlearn(exp, w_T):
    return neggrad(exp.fm, w_T, exp.X, exp.y, exp.U, NegGradConfig.from_args(exp.args))


if __name__ == "__main__":
    run_main(run_baseline, "NegGrad", unlearn, ARGS)
