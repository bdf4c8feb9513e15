"""What the first- and second-order updates leave of the distance to Retrain, term by term.

    python3 -m tools.second_order_terms <the flags of main_proposed.py> [--json]

Reads the saved models of one configuration (Original's w_T, Retrain w_R, the noise floor,
and Proposed at --hf_order 1 and 2 with the other flags as given: make them with
main_retrain.py, main_proposed.py [--hf_order 2] and main_eva.py) and prints, with
r1 = w_R - (w_T + a) the residual of the first-order update and q = (w_T + a + q) - (w_T + a)
the second-order term:

    ||r1||, ||q|| / ||r1||, cos(q, r1), ||r1 - q|| (the residual at order 2), and the floor,

so that a reader sees whether the second-order term points at what the first order leaves
and which part dominates what is left (higher orders and the kinks of the network, beside the
floor's run-to-run noise of training itself).
"""
from utils.common.options import parse_args

if __name__ == "__main__":
    ARGS = parse_args()

from utils.common.errors import InputError  # noqa: E402
from utils.common.experiment import Experiment, command_line, run_main  # noqa: E402
from utils.common.report import finish, table  # noqa: E402


def terms(w_T, w_R, w1, w2):
    """The decomposition of the module docstring (float64 norms and cosine)."""
    r1, q = (w_R - w1).double(), (w2 - w1).double()
    d0 = float((w_R - w_T).double().norm())
    cos = float(q @ r1) / float(q.norm() * r1.norm()) if float(q.norm() * r1.norm()) > 0 else None
    return {"original": d0, "residual_order1": float(r1.norm()), "q_norm": float(q.norm()),
            "q_over_residual": float(q.norm()) / float(r1.norm()), "cos_q_residual": cos,
            "residual_order2": float((r1 - q).norm()),
            "removed_order1": 1 - float(r1.norm()) / d0, "removed_order2": 1 - float((r1 - q).norm()) / d0}


def main(args):
    exp = Experiment(args)
    w_T, _ = exp.original()
    need = {}
    for name, view in (("Retrain", exp), ("Floor", exp), ("Proposed", exp.with_flags(hf_order=1)),
                       ("Proposed[order2]", exp.with_flags(hf_order=2))):
        got = view.load_method(name.split("[")[0])
        if got is None:
            script = "main_eva.py" if name == "Floor" else "main_retrain.py" if name == "Retrain" else \
                "main_proposed.py" + (" --hf_order 2" if "order2" in name else "")
            raise InputError(f"no {name} model for these flags; run: {command_line(script)}")
        need[name] = got[0]
    out = terms(w_T, need["Retrain"], need["Proposed"], need["Proposed[order2]"])
    out["floor"] = float((need["Floor"] - need["Retrain"]).double().norm())
    finish(out, args.json, table([out], list(out)))


if __name__ == "__main__":
    run_main(main, ARGS)
