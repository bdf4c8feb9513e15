"""Comparison of every saved method with the retrained model (SPEC section 10).

One configuration: for Original (w_T) and every method saved for the current flags,

    distance = ||w_method - w_retrain||_2   over all parameters,

with test / forget / remaining accuracy and loss, precompute and unlearning time and
storage from the method's own record, and the noise floor of the distance (``utils.evaluation.floor``):
every row carries ``floor``, ``floor_ratio`` = distance / floor and ``within_floor``.
Accuracies and losses are computed now, for the current forget set and test set, never read
from a stored record. Results go to ``<results_dir>/eva-...json/.txt``, named by a key of every
input of the saved models (``Experiment.result_identity``); each file carries its ``setting``
(the configuration without the seed) and its ``seed``. The aggregate mode reads every such file
and reports mean ± std (population std, numpy's default) over the seeds of each (setting, method).
"""
import csv
import glob
import io
import math
import os

import numpy as np

from utils.common import artifacts, keys, methods
from utils.common.experiment import METHOD_FLAGS, command_line
from utils.common.errors import InputError
from utils.training.finite import distance
from utils.common.provenance import provenance
from utils.evaluation.floor import RULE, WITHIN
from utils.proposed.hfconfig import HFConfig
from utils.common.report import table

METRICS = ["distance", "floor", "floor_ratio", "removed", "alignment", "test_acc", "test_loss", "forget_acc", "remain_acc",
           "precompute_s", "unlearn_s", "storage_bytes"]
ACCURACIES = ["test_acc", "test_loss", "forget_acc", "forget_loss", "remain_acc", "remain_loss"]
PREFIX = "eva-"


def _clean(v):
    """JSON-safe number: NaN / inf / missing -> None."""
    if v is None or isinstance(v, bool):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def setting_of(exp):
    """The configuration without the seed and what the seed draws (data subset, initial
    weights, U): training flags, device, data source, test rate, deletion set size, method flags."""
    cfg = {k: v for k, v in keys.values(exp.args, "train").items() if k != "seed"}
    cfg.update(device=exp.device.type, data_source=exp.data.source, test_train_rate=exp.args.test_train_rate)
    cfg["num_forget"] = len(exp.U)
    cfg["forget_indices"] = exp.args.forget_list
    for flags in METHOD_FLAGS.values():
        cfg.update(exp.method_config(flags))
    if exp.unlearn.candidate_list is not None:
        # an explicit list is drawn per seed (a nested sweep's largest U); Proposed reads only
        # U's rows, so the setting records how many candidates, not which, and seeds pool
        cfg["hf_candidates"] = f"{len(exp.unlearn.candidate_list)} explicit"
    return cfg


def proposed_variants(exp):
    """[(HFConfig, exp seen with its flags)] of the Proposed variants to show: each label of
    --proposed_rows, else the one the flags select."""
    if exp.args.proposed_row_flags is None:
        return [(exp.unlearn.hf, exp)]
    return [(HFConfig.from_flags(flags), exp.with_flags(**flags)) for flags in exp.args.proposed_row_flags]


def _variant_command(hf):
    """The user's command as main_proposed.py for variant ``hf`` (its own variant flags)."""
    extra = [] if hf.is_paper else ["--hf_variant", hf.variant, "--hf_curvature", hf.curvature,
                                    "--hf_damping", f"{hf.damping:g}"]
    extra += ["--hf_order", str(hf.order)] if hf.order != 1 else []
    return command_line("main_proposed.py", drop=("--proposed_rows", "--hf_variant", "--hf_curvature",
                                                  "--hf_damping", "--hf_order"), extra=extra)


def require_proposed(exp):
    """Before any work (the floor's retrain): every variant of --proposed_rows is saved and,
    with --application, so is each shown variant's certified release; else InputError naming
    the first missing one and the command that makes it."""
    if exp.args.proposed_row_flags is None:
        if exp.args.application:
            exp.require_method("Proposed_noise")
        return
    wanted = ["Proposed"] + (["Proposed_noise"] if exp.args.application else [])
    for hf, variant in proposed_variants(exp):
        for method in wanted:
            pt, js = variant.method_paths(method)
            if not (os.path.exists(pt) and os.path.exists(js)):
                raise InputError(f"no {method} model for the --proposed_rows variant '{hf.label}' ({pt}); "
                                 f"run: {_variant_command(hf)}")


def proposed_models(exp):
    """{row name: (w, record)} of the Proposed variants to show (``proposed_variants``): each
    variant's model (required for a label of --proposed_rows), then each one's certified
    release (required with --application, else shown when saved). Row names:
    ``HFConfig.row_name`` ('Proposed', 'Proposed[authors]') and ``noise_row_name``
    ('Proposed_noise', 'Proposed_noise[authors]'): a release is shown beside its own variant only."""
    listed = exp.args.proposed_row_flags is not None
    models, noised = {}, {}
    for hf, variant in proposed_variants(exp):
        got = variant.load_method("Proposed", command=_variant_command(hf) if listed else None)
        if got is not None:
            models[hf.row_name] = got
        if exp.args.application:
            noise = (variant.load_method("Proposed_noise", command=_variant_command(hf)) if listed
                     else exp.require_method("Proposed_noise"))
        else:
            noise = variant.load_method("Proposed_noise")
        if noise is not None:
            noised[hf.noise_row_name] = noise
    return dict(models, **noised)


def certified(name):
    """A certified-removal row: its models optimise another objective (the perturbed loss), so
    removed / alignment against Original and Retrain do not apply."""
    row = methods.BY_NAME.get(name)
    return row is not None and row.kind == methods.CERTIFIED


def update_metrics(w, w_T, w_retrain, d_original):
    """removed = 1 - ||w - w_R|| / ||w_T - w_R||, the fraction of Original's distance a method
    takes away, and alignment = cos(w - w_T, w_R - w_T), whether it moves toward Retrain at all
    (None when w = w_T or w_R = w_T)."""
    step, target = (w - w_T).double(), (w_retrain - w_T).double()
    removed = 1.0 - float((w - w_retrain).double().norm()) / d_original if d_original > 0 else None
    norms = float(step.norm() * target.norm())
    alignment = min(1.0, max(-1.0, float(step @ target) / norms)) if norms > 0 else None
    return {"removed": removed, "alignment": alignment}


def compare(exp):
    """{method: row} for Original and every saved method; needs original.pt and Retrain.

    Accuracies and losses are evaluated now on the current U, D \\ U and test set; costs
    (precompute, unlearning time, storage) come from each method's record, and so does
    ``threads``, the torch thread count the model was computed with (when recorded). Every
    method but Original and Retrain also gets ``removed`` and ``alignment`` (``update_metrics``).
    """
    w_T = exp.require_original()
    w_retrain, _ = exp.require_method("Retrain")
    models = {"Original": (w_T, artifacts.read_json(os.path.join(exp.train_dir, "manifest.json")))}
    for method, got in exp.saved_methods().items():
        if method in ("Proposed", "Proposed_noise"):
            continue
        models[method] = got
        if method == "Retrain":
            models.update(proposed_models(exp))
    d_original = float((w_T - w_retrain).double().norm())
    rows = {}
    for name, (w, record) in models.items():
        m = dict(record.get("metrics", {}), **exp.metrics(w))
        # a method certified against its own reference (CR: CR_Retrain) is measured against it
        reference = m.get("reference")
        target = models[reference][0] if reference in models else w_retrain
        row = {"distance": distance(w, target, f"the distance of {name} to {reference or 'Retrain'}",
                                    f"delete {exp.forget_dir} and rerun the methods")}
        if reference:
            row["reference"] = reference
        row.update({k: _clean(m.get(k)) for k in ACCURACIES + ["precompute_s", "unlearn_s", "storage_bytes"]})
        row.update(update_metrics(w, w_T, w_retrain, d_original) if name not in ("Original", "Retrain")
                   and not certified(name) else {"removed": None, "alignment": None})
        threads = record.get("provenance", {}).get("threads")
        if isinstance(threads, int):
            row["threads"] = threads
        rows[name] = row
    return rows


def thread_notice(rows):
    """One line when Original and Retrain were computed with different torch thread counts
    (cached models are shared across machines, so the count is recorded, not keyed): their
    distance then includes the rounding that the 'threads' floor measures; else None."""
    counts = {name: rows[name].get("threads") for name in ("Original", "Retrain")}
    if None in counts.values() or counts["Original"] == counts["Retrain"]:
        return None
    return (f"notice: Original was trained with {counts['Original']} thread(s) and Retrain with "
            f"{counts['Retrain']}: distances include that rounding (see it with --floor threads)")


def text_table(rows):
    """One line per method; a '~' after the name marks a distance within the floor rule."""
    shown = [dict(r, method=name + (" ~" if r.get("within_floor") and name != "Retrain" else ""))
             for name, r in rows.items()]
    footer = f"\n{RULE}" if any("floor" in r for r in rows.values()) else ""
    return table(shown, ["method"] + METRICS) + footer


def result_base(exp):
    """results_dir/eva-<dataset>-<model>-n-m-s-<key of the setting, seed and every input>."""
    a = exp.args
    identity = {"setting": setting_of(exp), "seed": a.seed, "inputs": exp.result_identity()}
    if keys.values(a, "eva"):
        identity["eva"] = keys.values(a, "eva")
    key = artifacts.config_key(identity)
    return os.path.join(a.results_dir, f"{PREFIX}{a.dataset}-{a.model}-n{a.num_dataset}-m{len(exp.U)}-s{a.seed}-{key}")


def write_result(exp, rows):
    """Write the text and JSON files of one configuration; returns their paths."""
    a = exp.args
    setting = setting_of(exp)
    base = result_base(exp)
    record = {"setting": setting, "setting_key": artifacts.config_key(setting), "seed": a.seed,
              "data_source": exp.data.source, "methods": rows, "provenance": provenance(exp)}
    artifacts.write_json(base + ".json", record)
    header = (f"{a.dataset} / {a.model}  n={a.num_dataset}  m={len(exp.U)}  seed={a.seed}  "
              f"(setting {record['setting_key']}; distance = L2 to Retrain)\n")
    artifacts.write_text(base + ".txt", header + text_table(rows) + "\n")
    return base + ".txt", base + ".json"


# ---------------------------------------------------------------------- aggregate mode
def _label(setting):
    """Row label; a floor other than the default 'perturb' is named."""
    floor = setting.get("floor", "perturb")
    return (f"{setting['dataset']}/{setting['model']} n={setting['num_dataset']} m={setting['num_forget']} "
            f"lr={setting['lr']} epochs={setting['epochs']}" + ("" if floor == "perturb" else f" floor={floor}"))


# what each aggregated metric can be: a finite number in [low, high], or null (not applicable)
BOUNDS = {"distance": (0.0, math.inf, "a distance"), "floor": (0.0, math.inf, "a distance"),
          "floor_ratio": (0.0, math.inf, "a ratio of distances"),
          "test_acc": (0.0, 1.0, "an accuracy"), "forget_acc": (0.0, 1.0, "an accuracy"),
          "remain_acc": (0.0, 1.0, "an accuracy"), "test_loss": (0.0, math.inf, "a loss"),
          "precompute_s": (0.0, math.inf, "a time"), "unlearn_s": (0.0, math.inf, "a time"),
          "storage_bytes": (0.0, math.inf, "a size"),
          "removed": (-math.inf, 1.0, "a fraction of the distance removed"),
          "alignment": (-1.0, 1.0, "a cosine")}
RECORD_FIELDS = ("setting_key", "setting", "seed", "methods") + tuple(
    f"setting.{k}" for k in ("dataset", "model", "num_dataset", "num_forget", "lr", "epochs"))
REMEDY = "delete it (or rerun main_eva.py for its seed) and aggregate again"


def checked_value(path, where, metric, v):
    """``v`` when it can be ``metric`` (see BOUNDS), else InputError naming the file."""
    if v is None:
        return None
    low, high, what = BOUNDS[metric]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and low <= v <= high):
        bounds = (f"a finite number >= {low:g}" if not math.isfinite(high) else
                  f"a finite number <= {high:g}" if not math.isfinite(low) else
                  f"a finite number in [{low:g}, {high:g}]")
        raise InputError(f"result {path}: {where}.{metric} = {v!r} cannot be {what} (expected {bounds} "
                         f"or null); {REMEDY}")
    return float(v)


def read_result(path):
    """One eva-*.json result, its fields and every aggregated value checked (InputError naming it)."""
    rec = artifacts.read_json(path, remedy=REMEDY, fields=RECORD_FIELDS)
    if not isinstance(rec["methods"], dict) or not all(isinstance(r, dict) for r in rec["methods"].values()):
        raise InputError(f"result {path}: 'methods' is not an object of method rows; {REMEDY}")
    if isinstance(rec["seed"], bool) or not isinstance(rec["seed"], int):
        raise InputError(f"result {path}: seed = {rec['seed']!r} is not an integer; {REMEDY}")
    for method, row in rec["methods"].items():
        for metric in METRICS:
            checked_value(path, f"methods.{method}", metric, row.get(metric))
    return rec


def aggregate(results_dir):
    """{setting_key: {"setting", "label", "seeds", "method_seeds": {method: seeds},
    "methods": {method: {metric: {mean, std, runs}}}}}: each method's statistics are over the
    seeds that have it (``method_seeds``), not over every seed of the setting."""
    files = sorted(glob.glob(os.path.join(results_dir, PREFIX + "*.json")))
    if not files:
        raise InputError(f"no {PREFIX}*.json results in {results_dir}; run main_eva.py (without "
                         f"--aggregate) for each seed and setting first")
    groups = {}
    for path in files:
        rec = read_result(path)
        g = groups.setdefault(rec["setting_key"], {"setting": rec["setting"], "seeds": {}, "values": {},
                                                   "method_seeds": {}})
        if rec["seed"] in g["seeds"]:
            raise InputError(f"two results for seed {rec['seed']} of one setting: {g['seeds'][rec['seed']]} "
                             f"and {path} (computed from different inputs); delete the stale one and "
                             f"aggregate again")
        g["seeds"][rec["seed"]] = path
        for method, row in rec["methods"].items():
            g["method_seeds"].setdefault(method, []).append(rec["seed"])
            for metric in METRICS:
                if row.get(metric) is not None:
                    g["values"].setdefault(method, {}).setdefault(metric, []).append(float(row[metric]))
    out = {}
    labels = [_label(g["setting"]) for g in groups.values()]
    for key, g in groups.items():
        label = _label(g["setting"])
        if labels.count(label) > 1:
            label += f" [{key}]"
        out[key] = {"setting": g["setting"], "label": label, "seeds": sorted(g["seeds"]),
                    "method_seeds": {m: sorted(s) for m, s in g["method_seeds"].items()},
                    "methods": {m: {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": len(v)}
                                    for k, v in vals.items()} for m, vals in g["values"].items()}}
    return out


def methods_in_order(names):
    """Method names in the display order of the method table; a variant, 'Proposed[...]', right
    after its base ('Proposed'), unknown names last."""
    order = ["Original"] + list(METHOD_FLAGS)

    def place(m):
        base = m.split("[")[0]
        return (order.index(base) if base in order else len(order), m != base, m)
    return sorted(names, key=place)


def _methods_in_order(agg):
    names = []
    for g in agg.values():
        names += [m for m in g["methods"] if m not in names]
    return methods_in_order(names)


def _cell(stat, seeds=None):
    """'mean ± std' over the runs that have the value; one run is shown as 'mean (1 seed)' (no
    spread to show), and fewer runs than the setting's ``seeds`` are counted: '(k of N seeds)'."""
    if stat is None:
        return "-"
    runs = stat.get("runs", 0)
    text = f"{stat['mean']:.4g} ± {stat['std']:.2g}" if runs > 1 else f"{stat['mean']:.4g}"
    if seeds is not None and runs != seeds:
        text += f" ({runs} of {seeds} seeds)"
    elif runs == 1:
        text += " (1 seed)"
    return text


def _floor_stat(g):
    """Mean ± std of the floor of one setting (the same in every method's rows)."""
    for stats in g["methods"].values():
        if "floor" in stats:
            return stats["floor"]
    return None


def _distance_cell(stats, floor, seeds=None):
    """'mean ± std (r x floor)' with '~' when mean distance <= WITHIN x mean floor."""
    cell = _cell(stats, seeds)
    if stats is None or floor is None or floor["mean"] <= 0:
        return cell
    r = stats["mean"] / floor["mean"]
    return f"{cell} ({r:.3g}x)" + (" ~" if r <= WITHIN else "")


def _distance_table(keyed, methods):
    shown = [m for m in methods if m != "Retrain"]
    lines = ["### L2 distance to the retrained model (mean ± std over seeds; (r x) = mean distance / "
             "mean floor)", "",
             "| setting | seeds | floor | " + " | ".join(shown) + " |",
             "|---|---|---|" + "---|" * len(shown)]
    for g in keyed:
        floor = _floor_stat(g)
        cells = [_distance_cell(g["methods"].get(m, {}).get("distance"), floor, len(g["seeds"])) for m in shown]
        lines.append(f"| {g['label']} | {len(g['seeds'])} | {_cell(floor)} | " + " | ".join(cells) + " |")
    lines += ["", f"{RULE} (applied to the means over seeds)."]
    return "\n".join(lines)


def aggregate_markdown(agg):
    """Paper-style tables: settings (dataset/model/n/m) by methods, mean ± std over seeds; the
    distance table has the floor column and each method's distance / floor."""
    methods = _methods_in_order(agg)
    keyed = sorted(agg.values(), key=lambda g: (g["setting"]["dataset"], g["setting"]["model"],
                                                g["setting"]["num_forget"], g["setting"]["lr"],
                                                g["setting"]["epochs"], g["label"]))
    parts = [_distance_table(keyed, methods)]
    for metric, title in [("removed", "Fraction of Original's distance removed, 1 - d / d(Original)"),
                          ("alignment", "Alignment, cos(w - w_T, w_Retrain - w_T)"),
                          ("test_acc", "Test accuracy"),
                          ("forget_acc", "Accuracy on the forget set U"), ("unlearn_s", "Unlearning time (s)"),
                          ("precompute_s", "Precompute time (s)")]:
        lines = [f"### {title} (mean ± std over seeds)", "",
                 "| setting | seeds | " + " | ".join(methods) + " |",
                 "|---|---|" + "---|" * len(methods)]
        for g in keyed:
            cells = [_cell(g["methods"].get(m, {}).get(metric), len(g["seeds"])) for m in methods]
            lines.append(f"| {g['label']} | {len(g['seeds'])} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def aggregate_csv(agg):
    """One row per (setting, method): mean and std of every metric, and the number of seeds that
    have the method (``seeds``; the setting's own count is ``setting_seeds``)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["setting_key", "dataset", "model", "num_dataset", "num_forget", "method", "seeds",
                     "setting_seeds"]
                    + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")])
    for key, g in agg.items():
        s = g["setting"]
        for method in _methods_in_order({key: g}):
            stats = g["methods"][method]
            values = []
            for m in METRICS:
                values += [stats[m]["mean"], stats[m]["std"]] if m in stats else ["", ""]
            seeds = len(g.get("method_seeds", {}).get(method, g["seeds"]))
            writer.writerow([key, s["dataset"], s["model"], s["num_dataset"], s["num_forget"], method,
                             seeds, len(g["seeds"])] + values)
    return buf.getvalue()


def write_aggregate(results_dir, agg):
    md = os.path.join(results_dir, "eva_summary.md")
    cs = os.path.join(results_dir, "eva_summary.csv")
    artifacts.write_text(md, aggregate_markdown(agg))
    artifacts.write_text(cs, aggregate_csv(agg))
    return md, cs
