"""Fine-tuning and NegGrad baselines do what they claim on the loss they target."""
import json

import torch

from helpers import WINE, run_script
from utils.baselines.firstorder import FineTuneConfig, NegGradConfig, finetune, neggrad
from utils.common.experiment import Experiment
from utils.training.functional import evaluate
from utils.common.options import parse_args


def test_finetune_lowers_remaining_loss_and_neggrad_raises_forget_loss(dirs):
    exp = Experiment(parse_args(WINE + dirs + ["--epochs", "3", "--finetune_epochs", "20",
                                               "--neggrad_epochs", "5", "--neggrad_lr_scale", "10"]))
    w_T = exp.train_original(progress=False)
    rest = exp.keep.nonzero().squeeze(1)
    loss = lambda w, idx: evaluate(exp.fm, w, exp.X[idx], exp.y[idx])[1]
    w_ft = finetune(exp.fm, w_T, exp.X, exp.y, exp.keep, FineTuneConfig.from_args(exp.args), len(exp.schedule))
    assert loss(w_ft, rest) < loss(w_T, rest)
    w_ng = neggrad(exp.fm, w_T, exp.X, exp.y, exp.U, NegGradConfig.from_args(exp.args))
    assert loss(w_ng, exp.U) > loss(w_T, exp.U)


def test_finetune_never_reads_forgotten_samples(dirs):
    exp = Experiment(parse_args(WINE + dirs + ["--epochs", "2", "--finetune_epochs", "2"]))
    w_T = exp.train_original(progress=False)
    exp.X[exp.U] = float("nan")
    assert torch.isfinite(finetune(exp.fm, w_T, exp.X, exp.y, exp.keep, FineTuneConfig.from_args(exp.args), 0)).all()


def test_scripts_write_models_and_distances(dirs):
    run_script("main_retrain.py", *WINE, *dirs)
    for script, method in [("main_finetune.py", "Finetune"), ("main_neggrad.py", "NegGrad")]:
        out = json.loads(run_script(script, *WINE, *dirs, "--finetune_epochs", "2", "--json").stdout)
        assert out["method"] == method and out["distance"] > 0
        assert torch.load(out["model"], weights_only=True)["w"].ndim == 1
