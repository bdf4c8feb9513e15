"""The one table of unlearning methods: what each is called, which script writes it, which
flags key its files, and how the sweeps and audits treat it.

Adding a method is one row here plus its script. Everything that lists methods reads this
table: the key families (``utils.common.keys``), the method registry and "run this first" messages
(``utils.common.experiment``), the audits' targets (``main_MIAU.py``, ``main_MIAL.py``,
``utils.audits.targets``), the summaries (``tools/``) and the sweeps, through

    python3 -m utils.common.methods KIND...      the scripts of the methods of those kinds, one a line

The order of the rows is the display order of every table. Standard library only: the table
is read before torch is imported.
"""
import sys
from dataclasses import dataclass

# kinds: the sweeps run the methods of a kind together
REFERENCE, PROPOSED, SECOND_ORDER, FIRST_ORDER, FLOOR, CERTIFIED = (
    "reference", "proposed", "second-order", "first-order", "floor", "certified")
KINDS = (REFERENCE, PROPOSED, SECOND_ORDER, FIRST_ORDER, FLOOR, CERTIFIED)

# the flags of the Hessian-free recursion that key its results; certified noise adds its own
PROPOSED_FLAGS = ("retrain_norm", "batch_unlearn", "bank_dtype", "hf_mode", "hf_candidates",
                  "hf_variant", "hf_curvature", "hf_damping", "hf_order")
NOISE_FLAGS = ("epsilon", "delta", "std", "rho", "noise_seed")
SECOND_ORDER_FLAGS = ("damping_factor", "hessian_solver")
# certified removal: what sets b (and the optimum's tolerance); the release adds its removal step
CR_NOISE_FLAGS = ("epsilon", "delta", "std", "cr_budget", "cr_tol")
CR_FLAGS = ("removal", "repair", "hf_order") + CR_NOISE_FLAGS


@dataclass(frozen=True)
class Method:
    """One unlearning method.

    name: the stored name (files <name>-<key>.pt / .json, table rows); never renamed.
    script: the command that writes it (a script, then any flags it needs).
    flags: the flags hashed into the key of its files (``utils.common.keys.FAMILIES[name]``).
    kind: one of KINDS.
    audited: the membership-inference audits attack it when it is saved.
    expected: the audits print a notice naming its command when it is missing.
    """
    name: str
    script: str
    flags: tuple
    kind: str
    audited: bool = True
    expected: bool = False


METHOD_TABLE = (
    Method("Retrain", "main_retrain.py", ("retrain_norm",), REFERENCE),
    Method("Proposed", "main_proposed.py", PROPOSED_FLAGS, PROPOSED, expected=True),
    Method("Proposed_noise", "main_proposed.py --application", PROPOSED_FLAGS + NOISE_FLAGS, PROPOSED,
           expected=True),
    Method("NU", "main_NU.py", SECOND_ORDER_FLAGS, SECOND_ORDER, expected=True),
    Method("IJ", "main_IJ.py", SECOND_ORDER_FLAGS, SECOND_ORDER, expected=True),
    Method("Finetune", "main_finetune.py", ("finetune_epochs",), FIRST_ORDER),
    Method("NegGrad", "main_neggrad.py", ("neggrad_epochs", "neggrad_batch", "neggrad_lr_scale"), FIRST_ORDER),
    # the noise floor of the distance: a perturbed (or float64, or other-thread-count) retrain
    Method("Floor", "main_eva.py", ("retrain_norm", "floor"), FLOOR, audited=False),
    # certified removal (Guo et al. 2020): the release after the requests, and the model it is
    # certified against, the exact optimum of the perturbed loss without U (same b)
    Method("CR", "main_CR.py", CR_FLAGS, CERTIFIED),
    Method("CR_Retrain", "main_CR.py", CR_NOISE_FLAGS, CERTIFIED),
)


BY_NAME = {m.name: m for m in METHOD_TABLE}


def names(rows=METHOD_TABLE):
    """The names of ``rows``, in display order."""
    return [m.name for m in rows]


def audited():
    """The names of the methods the audits attack, in display order."""
    return names(m for m in METHOD_TABLE if m.audited)


def scripts(*kinds):
    """The script files (without flags) that write the methods of ``kinds``, each once, in
    display order; ValueError for an unknown kind."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown method kind {unknown[0]!r}; one of {', '.join(KINDS)}")
    out = []
    for m in METHOD_TABLE:
        file = m.script.split()[0]
        if m.kind in kinds and file not in out:
            out.append(file)
    return out


if __name__ == "__main__":
    try:
        print("\n".join(scripts(*sys.argv[1:])))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
