"""Compare every saved method with the retrained model (SPEC section 10).

    python3 main_eva.py <the flags of the runs>            one configuration
    python3 main_eva.py --aggregate --results_dir results   mean ± std over the seeds found

One configuration: a table of the L2 distance to Retrain, the noise floor (--floor; computed
by one retrain and cached when missing), distance / floor, accuracies and losses, precompute
and unlearning time and storage for Original and every method saved under --log_dir for
these flags, written to --results_dir as text and JSON. --json prints {method: row}, every
row with floor, floor_ratio and within_floor.
Aggregate: per (setting, method) mean ± std over seeds, as Markdown and CSV.
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()     # flags first: a bad flag stops here, before the imports below load torch

from utils.evaluation.compare import (aggregate, compare, require_proposed, text_table, thread_notice,
                                      write_aggregate, write_result)
from utils.common.experiment import Experiment, run_main
from utils.evaluation.floor import annotate, ensure_floor
from utils.common.report import finish, info


def main(args):
    if args.aggregate:
        agg = aggregate(args.results_dir)
        md, cs = write_aggregate(args.results_dir, agg)
        finish(agg, args.json, open(md).read() + f"\nwritten: {md}, {cs}")
        return
    exp = Experiment(args)
    if args.application or args.proposed_row_flags:   # rows asked for by name must exist before any work
        exp.require_original()
        exp.require_method("Retrain")
        require_proposed(exp)
    ensure_floor(exp)
    rows = annotate(compare(exp))
    notice = thread_notice(rows)
    if notice:
        info(notice)
    txt, js = write_result(exp, rows)
    info(f"{args.dataset}/{args.model} n={exp.n} m={len(exp.U)} seed={args.seed}; distance = L2 to Retrain, floor: {args.floor}")
    finish(rows, args.json, text_table(rows) + f"\nwritten: {txt}, {js}")


if __name__ == "__main__":
    run_main(main, ARGS)
