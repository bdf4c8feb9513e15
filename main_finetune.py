"""Fine-tuning baseline: continue the clipped SGD on D \\ U from w_T (--finetune_epochs, 15 in the paper)."""

from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

from utils.baselines.firstorder import FineTuneConfig, finetune
from utils.common.experiment import run_baseline, run_main


def unlearn(exp, w_T):
    return finetune(exp.fm, w_T, exp.X, exp.y, exp.keep, FineTuneConfig.from_args(exp.args), len(exp.schedule),
                    progress=exp.progress)


if __name__ == "__main__":
    run_main(run_baseline, "Finetune", unlearn, ARGS)
