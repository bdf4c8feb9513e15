"""Every flag and input that changes a stored number keys the file that holds it."""
import argparse
import copy
import glob
import json
import os

import pytest
import torch

from helpers import WINE, run_script
from utils.common import keys
from utils.evaluation.compare import result_base
from utils.common.experiment import METHOD_FLAGS, Experiment
from utils.proposed.hf import BANK_FLAGS, bank_dir, candidate_rows
from utils.common.options import build_parser, parse_args, parse_indices
from utils.audits.targets import results_base
from utils.audits.ulira import cache_paths as ulira_cache_paths

# classified here, defined by parsers of other branches (tolerated while absent)
ADDED_ELSEWHERE = {"dist_timeout", "floor", "noise_seeds"}
METHOD_FAMILIES = set(keys.METHODS)
FLAGS = WINE + ["--epochs", "2", "--num_dataset", "40", "--num_forget", "3"]


def parser_actions():
    return {a.dest: a for a in build_parser()._actions if not isinstance(a, argparse._HelpAction)}


def sources(family):
    """Flags a family's key depends on: hashed directly or through a derived input."""
    return set(keys.FAMILIES.get(family, [])) | {f for fl in keys.DERIVED.get(family, {}).values() for f in fl}


def test_every_parser_flag_is_classified():
    missing = sorted(set(parser_actions()) - set(keys.FLAGS))
    assert not missing, f"flags with no entry in utils.common.keys.FLAGS: {missing}"
    stale = sorted(set(keys.FLAGS) - set(parser_actions()) - ADDED_ELSEWHERE)
    assert not stale, f"utils.common.keys.FLAGS names flags no parser defines: {stale}"
    for flag, (kind, what) in keys.FLAGS.items():
        assert kind in ("keys", "nothing") and what, flag


def test_claims_match_the_key_lists():
    present = set(parser_actions())
    for flag, (kind, what) in keys.FLAGS.items():
        if kind != "keys" or flag not in present:
            continue
        for family in what:
            assert family in keys.FAMILIES, (flag, family)
            assert flag in sources(family), f"--{flag} claims to key {family}, whose key ignores it"
    for family in keys.FAMILIES:
        for flag in sources(family):
            assert flag in present, (family, flag)
            kind, what = keys.FLAGS[flag]
            assert kind == "keys" and family in what, f"{family}'s key uses --{flag}, not classified so"


def test_key_functions_read_the_table():
    assert METHOD_FLAGS == {m: keys.FAMILIES[m] for m in keys.METHODS}
    assert BANK_FLAGS is keys.FAMILIES["hfbank"]
    exp = Experiment(parse_args(FLAGS))
    # --unit_norm is keyed only when set (utils.common.keys.KEYED_WHEN_CHANGED)
    assert set(exp.train_config()) == sources("train") - {"data_dir", "gpu", "unit_norm"} | {
        "data", "device", "init", "data_source"}
    assert set(exp.forget_config()) == set(keys.FAMILIES["forget"]) | set(keys.DERIVED["forget"])


def stored_paths(exp):
    """{family: path relative to --log_dir / --results_dir} of every keyed file of ``exp``."""
    a = exp.args
    _, cand = candidate_rows(a.hf_candidates, a.hf_candidate_list, exp.n, exp.U)
    logs = {"train": exp.train_dir, "forget": exp.forget_dir, "hfbank": bank_dir(exp, cand),
            "hessian": exp.cache_path("hessian"),
            "ij-factor": exp.cache_path("ij-factor", keys.FAMILIES["ij-factor"]),
            "lira-shadows": exp.cache_path("lira-shadows", keys.FAMILIES["lira-shadows"], {"pool": "P"}),
            "cr-original": exp.cache_path("cr-original", keys.FAMILIES["cr-original"])}
    logs.update({m: exp.method_paths(m)[0] for m in keys.METHODS})
    logs["ulira-shadows"], logs["ulira-proposed"] = ulira_cache_paths(exp)
    out = {k: os.path.relpath(p, a.log_dir) for k, p in logs.items()}
    out["mia"] = os.path.relpath(results_base(exp, "MIAU", {}), a.results_dir)
    out["eva"] = os.path.relpath(result_base(exp), a.results_dir)
    return out


def affected(families):
    """Families whose files change with ``families``' keys (nesting: train > forget > methods)."""
    out = set(families)
    if "train" in out:
        out |= set(keys.FAMILIES) | {"forget"}
    if "forget" in out:
        out |= METHOD_FAMILIES
    if out & (METHOD_FAMILIES | {"train", "forget"}):
        out |= {"mia", "eva"}
    return out


def other_value(action, value):
    if action.const is True or action.const is False:
        return not value
    if action.choices:
        return next(c for c in action.choices if c != value)
    if value is None:
        return "0,1" if action.type is None else 0.5
    if isinstance(value, str):
        return value + "x"
    return value * 2 + 1


def test_changing_a_flag_changes_exactly_the_files_it_is_claimed_to_key(tmp_path):
    """Each flag hashed directly is changed alone: the files whose key moves must be the
    claimed families (and what is nested in them), nothing else; "nothing" flags move none."""
    args = parse_args(FLAGS + ["--log_dir", str(tmp_path / "l"), "--results_dir", str(tmp_path / "r")])
    exp = Experiment(args)
    base = stored_paths(exp)
    direct = {f for fam in keys.FAMILIES.values() for f in fam}
    checked = 0
    for flag, action in parser_actions().items():
        kind, what = keys.FLAGS[flag]
        if kind == "keys" and flag not in direct:
            continue              # only through a derived input: the tests below
        exp.args = copy.copy(args)
        setattr(exp.args, flag, other_value(action, getattr(args, flag)))
        if flag == "hf_candidates":      # parse time derives the list the key functions read
            exp.args.hf_candidate_list = parse_indices("--hf_candidates", exp.args.hf_candidates)
        now = stored_paths(exp)
        moved = {k for k in base if now[k] != base[k]}
        claimed = affected(what) if kind == "keys" else set()
        hashed = affected([fam for fam in claimed if flag in keys.FAMILIES.get(fam, [])])
        assert hashed <= moved <= claimed, f"--{flag}: moved {sorted(moved)}, claimed {sorted(claimed)}"
        checked += 1
    assert checked > 30


def test_the_data_actually_loaded_keys_training(tmp_path):
    """Two copies of a dataset that differ in one training input or one test input."""
    args = parse_args(FLAGS + ["--log_dir", str(tmp_path)])
    ref, train_copy, test_copy = Experiment(args), Experiment(args), Experiment(args)
    train_copy.data.X_train[0, 0] += 1
    test_copy.data.X_test[0, 0] += 1
    assert train_copy.train_dir != ref.train_dir
    assert test_copy.train_dir == ref.train_dir and test_copy.forget_dir != ref.forget_dir


def test_device_type_and_forget_set_key(tmp_path):
    args = parse_args(FLAGS + ["--log_dir", str(tmp_path)])
    ref, cuda = Experiment(args), Experiment(args)
    cuda.device = torch.device("cuda", 0)            # as a CUDA run would record it
    assert cuda.train_dir != ref.train_dir
    other = Experiment(parse_args(FLAGS + ["--log_dir", str(tmp_path), "--num_forget", "4"]))
    assert other.train_dir == ref.train_dir and other.forget_dir != ref.forget_dir
    same_u = ",".join(str(int(u)) for u in ref.U)
    explicit = Experiment(parse_args(FLAGS + ["--log_dir", str(tmp_path), "--forget_indices", same_u]))
    assert explicit.forget_dir == ref.forget_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """As a user runs them, into one --log_dir: two test rates, then a second m."""
    tmp = tmp_path_factory.mktemp("keys")
    dirs = ["--log_dir", str(tmp / "log"), "--results_dir", str(tmp / "res")]
    settings = {"r0.4": ["--test_train_rate", "0.4"], "r0.2": ["--test_train_rate", "0.2"],
                "m5": ["--num_forget", "5"]}
    for extra in settings.values():
        run_script("main_retrain.py", *FLAGS, *dirs, *extra)
    rows = {k: json.loads(run_script("main_eva.py", *FLAGS, *dirs, *extra, "--json").stdout)
            for k, extra in settings.items()}
    return dict(tmp=tmp, dirs=dirs, settings=settings, rows=rows)


def direct_metrics(runs, name):
    """Metrics of Original and Retrain evaluated here, for the run's own U and test set."""
    exp = Experiment(parse_args(FLAGS + runs["dirs"] + runs["settings"][name]))
    w_re, record = exp.require_method("Retrain")
    return exp, {"Original": exp.metrics(exp.require_original()), "Retrain": exp.metrics(w_re)}, record


def test_test_rate_runs_keep_separate_files_and_eva_reports_its_own_test_set(runs):
    log = runs["tmp"] / "log"
    assert len(glob.glob(str(log / "*" / "original.pt"))) == 1          # w_T is shared
    assert len(glob.glob(str(log / "*" / "forget-*" / "Retrain-*.json"))) == 3
    assert len(glob.glob(str(runs["tmp"] / "res" / "eva-*.json"))) == 3
    for name, rate in (("r0.4", 0.4), ("r0.2", 0.2)):
        exp, direct, record = direct_metrics(runs, name)
        assert len(exp.y_test) == int(rate * 40)
        for method in ("Original", "Retrain"):
            for k in ("test_acc", "test_loss"):
                assert runs["rows"][name][method][k] == pytest.approx(direct[method][k], rel=1e-6), (name, method, k)
        assert record["metrics"]["test_loss"] == pytest.approx(direct["Retrain"]["test_loss"], rel=1e-6)
    assert runs["rows"]["r0.4"]["Original"]["test_loss"] != runs["rows"]["r0.2"]["Original"]["test_loss"]


def test_metrics_of_a_later_deletion_set_are_its_own(runs):
    """The second m on one training config: Original's forget / remain metrics are on its U."""
    exp, direct, _ = direct_metrics(runs, "m5")
    assert len(exp.U) == 5
    for method in ("Original", "Retrain"):
        for k in ("forget_acc", "forget_loss", "remain_acc", "remain_loss"):
            assert runs["rows"]["m5"][method][k] == pytest.approx(direct[method][k], rel=1e-6), (method, k)
    first = runs["rows"]["r0.4"]["Original"]
    assert first["forget_loss"] != runs["rows"]["m5"]["Original"]["forget_loss"]
