"""The method table (utils/common/methods.py) is the one list of methods: every reader agrees with
it, every row's script exists, and the sweeps' query gives the scripts they always ran."""
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from utils.common import keys, methods
from utils.common.experiment import METHOD_SCRIPTS
from utils.common.options import build_parser


def query(*kinds):
    """`python3 -m utils.common.methods KIND...` as the sweeps run it."""
    return subprocess.run([sys.executable, "-m", "utils.common.methods", *kinds], cwd=ROOT, capture_output=True,
                          text=True)


def test_every_row_names_an_existing_script_and_parser_flags():
    flags = {a.dest for a in build_parser()._actions}
    for m in methods.METHOD_TABLE:
        script, *extra = m.script.split()
        assert os.path.isfile(os.path.join(ROOT, script)), m.name
        assert all(f.startswith("--") and f[2:] in flags for f in extra), m.name
        assert set(m.flags) <= flags, m.name
        assert m.kind in methods.KINDS and (m.audited or not m.expected), m.name


def test_the_readers_take_the_table():
    assert keys.METHODS == ["Retrain", "Proposed", "Proposed_noise", "NU", "IJ", "Finetune", "NegGrad", "Floor",
                            "CR", "CR_Retrain"]
    cr_noise = ["epsilon", "delta", "std", "cr_budget", "cr_tol"]
    proposed = ["retrain_norm", "batch_unlearn", "bank_dtype", "hf_mode", "hf_candidates",
                "hf_variant", "hf_curvature", "hf_damping", "hf_order"]
    # the flags each method's stored files are keyed by: changing one changes every stored key
    assert {m: keys.FAMILIES[m] for m in keys.METHODS} == {
        "Retrain": ["retrain_norm"], "Proposed": proposed,
        "Proposed_noise": proposed + ["epsilon", "delta", "std", "rho", "noise_seed"],
        "NU": ["damping_factor", "hessian_solver"], "IJ": ["damping_factor", "hessian_solver"],
        "Finetune": ["finetune_epochs"], "NegGrad": ["neggrad_epochs", "neggrad_batch", "neggrad_lr_scale"],
        "Floor": ["retrain_norm", "floor"], "CR": ["removal", "repair", "hf_order"] + cr_noise, "CR_Retrain": cr_noise}
    assert METHOD_SCRIPTS == {"Retrain": "main_retrain.py", "Proposed": "main_proposed.py",
                              "Proposed_noise": "main_proposed.py --application", "NU": "main_NU.py",
                              "IJ": "main_IJ.py", "Finetune": "main_finetune.py", "NegGrad": "main_neggrad.py",
                              "Floor": "main_eva.py", "CR": "main_CR.py", "CR_Retrain": "main_CR.py"}
    assert methods.audited() == ["Retrain", "Proposed", "Proposed_noise", "NU", "IJ", "Finetune", "NegGrad",
                                 "CR", "CR_Retrain"]
    assert [m.name for m in methods.METHOD_TABLE if m.expected] == ["Proposed", "Proposed_noise", "NU", "IJ"]


@pytest.mark.parametrize("kinds, scripts", [
    (["second-order"], ["main_NU.py", "main_IJ.py"]),                    # sweeps/common.sh
    (["first-order"], ["main_finetune.py", "main_neggrad.py"]),          # Wine.sh, sweeps/resnet.sh
    (["reference", "proposed", "second-order"],                          # quickstart.sh
     ["main_retrain.py", "main_proposed.py", "main_NU.py", "main_IJ.py"]),
])
def test_the_sweeps_query_gives_the_scripts_they_ran(kinds, scripts):
    proc = query(*kinds)
    assert proc.returncode == 0 and proc.stdout.split() == scripts


def test_an_unknown_kind_is_refused_in_one_line():
    proc = query("third-order")
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1


def test_run_kind_runs_each_script_with_the_flags():
    body = ('SWEEP=t; source sweeps/common.sh; run() { printf "%s|" "$@"; echo; }; '
            'run_kind second-order --seed "4 2"; run_kind first-order')
    proc = subprocess.run(["bash", "-c", body], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["main_NU.py|--seed|4 2|", "main_IJ.py|--seed|4 2|",
                                        "main_finetune.py|", "main_neggrad.py|"]
