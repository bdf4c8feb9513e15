"""The models a privacy audit attacks, and where its results go."""
import os

from utils.common import artifacts, keys, methods
from utils.common.experiment import METHOD_SCRIPTS, command_line
from utils.common.provenance import provenance
from utils.common.report import info


def present_targets(exp, wanted):
    """{method: w} for the saved unlearned models among ``wanted`` (Retrain required).

    Retrain, the exact-unlearning reference, must exist (InputError naming the command);
    each missing method that the method table marks ``expected`` gets a one-line notice
    naming the command that makes it.
    """
    exp.require_method("Retrain")
    found = exp.saved_methods()
    if exp.args.application and "Proposed_noise" not in found:
        exp.require_method("Proposed_noise")       # asked for (--application) but never released
    for method in wanted:
        if method not in found and methods.BY_NAME[method].expected:
            script, *extra = METHOD_SCRIPTS[method].split()
            info(f"notice: no {method} model for this configuration; to include it run: "
                 f"{command_line(script, extra=extra)}")
    # a float64 release (certified removal) is attacked as the model runs, in the data's dtype
    return {method: found[method][0].to(exp.X.dtype) for method in wanted if method in found}


def results_base(exp, prefix, config):
    """results_dir/<prefix>-<dataset>-<model>-n<n>-m<m>-s<seed>-<key of config>, no extension."""
    a = exp.args
    key = artifacts.config_key({"result": exp.result_identity(), "mia": keys.values(a, "mia"), **config})
    name = f"{prefix}-{a.dataset}-{a.model}-n{a.num_dataset}-m{len(exp.U)}-s{a.seed}-{key}"
    return os.path.join(a.results_dir, name)


def write_report(exp, base, config, results, figure, text):
    """<base>.txt (the human table) and <base>.json (config, data source, per-target results)."""
    artifacts.write_text(base + ".txt", text + "\n")
    artifacts.write_json(base + ".json", {"config": dict(config, train=exp.train_config(), forget=exp.U.tolist()),
                                          "data_source": exp.data.source, "targets": results, "figure": figure,
                                          "provenance": provenance(exp)})
