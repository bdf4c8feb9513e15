"""The body shared by the second-order baseline scripts (main_NU.py, main_IJ.py)."""
from utils.experiment import Experiment
from utils.options import parse_args
from utils.report import finish, info, table


def run_baseline(name, unlearn):
    """Parse flags, get w_T, run ``unlearn(exp, w_T) -> (w, costs)``, save and report."""
    args = parse_args()
    exp = Experiment(args)
    info(f"data: {exp.data.source}; n={exp.n}, d={exp.fm.d}, m={len(exp.U)}, "
         f"damping={args.damping_factor}, device={exp.device}")
    w_T, train_s = exp.original()
    w, costs = unlearn(exp, w_T)
    metrics = dict(exp.metrics(w), **costs, damping_factor=args.damping_factor,
                   data_source=exp.data.source)
    path = exp.save_method(name, w, metrics)
    rows = [dict(method="Original", **exp.metrics(w_T)), dict(method=name, **metrics)]
    cols = ["method", "test_acc", "forget_acc", "remain_acc", "test_loss", "precompute_s",
            "unlearn_s", "storage_bytes"]
    cached = " (cached)" if costs["precompute_cached"] else ""
    finish(dict(metrics, method=name, model=path, train_s=train_s), args.json,
           table(rows, cols) + f"\nprecompute {costs['precompute_s']:.2f}s{cached}, unlearn "
           f"{costs['unlearn_s']:.2f}s, storage {costs['storage_bytes']} bytes; model: {path}")
