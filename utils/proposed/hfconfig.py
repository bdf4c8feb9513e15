"""The Hessian-free method's own settings, settled once from the parsed flags.

``UnlearnConfig`` is to the method what ``utils.training.train.SGDConfig`` is to training: a frozen
object built once (``from_args``) and passed whole, so that nothing below the scripts reads
the method's flags. It nests ``HFConfig``, the choice of recursion. No torch import: the baseline
scripts load this module through ``utils.common.experiment`` at no cost.
"""
from dataclasses import dataclass, field
from typing import Optional


# the authors' three departures from the paper's recursion, in the order variant names list them
QUIRKS = ("inject_first", "sample_clip", "uncorrected")
# the variants with a name of their own: no quirk (the paper's equations), all three (the authors')
NAMED_VARIANTS = {"paper": (), "authors": QUIRKS}


def variant_name(quirks):
    """The one name of the variant with the set ``quirks`` (each one of QUIRKS): 'paper' for
    none, 'authors' for all three, else the quirks '+'-joined in QUIRKS order."""
    chosen = tuple(q for q in QUIRKS if q in set(quirks))
    named = [name for name, qs in NAMED_VARIANTS.items() if qs == chosen]
    return named[0] if named else "+".join(chosen)


def variant_quirks(name):
    """The inverse of ``variant_name``: the quirks of a variant name (KeyError when it is none)."""
    if name in NAMED_VARIANTS:
        return NAMED_VARIANTS[name]
    parts = name.split("+")
    if not all(p in QUIRKS for p in parts) or variant_name(parts) != name:
        raise KeyError(name)
    return tuple(parts)


@dataclass(frozen=True)
class HFConfig:
    """Which recursion ``recursion`` runs (``--hf_variant --hf_curvature --hf_damping``).

    variant 'paper' is the paper's equations (the derivative of w_T); 'authors' is the
    recursion behind the published figures, three departures from them together, each also
    selectable alone:

    * inject_first: a_u <- (I - eta_t J_t)(a_u + eta_t inj_u): the sample's term is injected
      before the contraction, not after;
    * sample_clip: inj_u is built from clip_c(grad CE_u(w_t) + lambda w_t), the sample's own
      regularised gradient clipped on its own, in place of C_t grad CE_u(w_t);
    * uncorrected: inj_u = (that vector) / |B_t| even under --retrain_norm mean (no batch-mean
      correction; with --retrain_norm batch this changes nothing).

    The quirks act independently, so any set of them is a variant: its name is
    ``variant_name(quirks)`` ('paper' for none, 'authors' for all three, else e.g.
    'inject_first+sample_clip').

    curvature 'ggn' puts the generalised Gauss-Newton matrix in J_t in place of the loss
    Hessian; damping kappa contracts with I - eta_t (J_t + kappa I).

    order 2 (``--hf_order``) adds the second Taylor term q_u = (1/2) d^2 w_T / ds_u^2 to a_u
    (docs/method.md, "Second order"); only with the paper's recursion.
    """
    variant: str = "paper"
    curvature: str = "hessian"
    damping: float = 0.0
    order: int = 1

    def has(self, quirk):
        """True when the variant includes ``quirk`` (one of QUIRKS)."""
        return quirk in variant_quirks(self.variant)

    @property
    def is_paper(self):
        """True for the paper's first-order recursion: the exact derivative of w_T."""
        return self == HFConfig()

    @classmethod
    def from_flags(cls, flags):
        """From a mapping with 'hf_variant', 'hf_curvature', 'hf_damping' and optionally
        'hf_order' (the parsed flags, or ``utils.common.options.parse_hf_label``'s result)."""
        return cls(flags["hf_variant"], flags["hf_curvature"], flags["hf_damping"], flags.get("hf_order", 1))

    def flags(self):
        """The inverse of ``from_flags`` ('hf_order' only when it is not 1)."""
        out = {"hf_variant": self.variant, "hf_curvature": self.curvature, "hf_damping": self.damping}
        return out if self.order == 1 else dict(out, hf_order=self.order)

    @property
    def label(self):
        """Short name of the non-default choices, '+'-joined: 'paper' for the paper's
        recursion, else e.g. 'authors', 'ggn', 'authors+ggn+kappa=0.1', 'order2'."""
        parts = [self.variant] if self.variant != "paper" else []
        parts += [self.curvature] if self.curvature != "hessian" else []
        parts += [f"kappa={self.damping:g}"] if self.damping else []
        parts += [f"order{self.order}"] if self.order != 1 else []
        return "+".join(parts) or "paper"

    @property
    def row_name(self):
        """The method's row in tables: 'Proposed', or 'Proposed[label]' for a variant."""
        return "Proposed" if self.is_paper else f"Proposed[{self.label}]"

    @property
    def noise_row_name(self):
        """The row of its certified release: 'Proposed_noise', or 'Proposed_noise[label]'."""
        return "Proposed_noise" if self.is_paper else f"Proposed_noise[{self.label}]"


@dataclass(frozen=True)
class UnlearnConfig:
    """The Hessian-free method's settings (``--retrain_norm --mem_budget_mb --bank_dtype
    --hf_candidates --hf_mode`` and ``HFConfig``'s three flags):

    * retrain_norm: the retrain the approximators target, normaliser 1/|B_t| ('batch') or
      1/|B_t \\ U| ('mean');
    * mem_budget_mb: the working-set budget of the vectorised Hessian-vector products;
    * bank_dtype: the storage precision of the bank rows;
    * candidates, candidate_list: which samples get a row ('all', 'forget' or explicit
      indices, the list parsed by ``utils.common.options``);
    * mode: 'bank' (precompute every candidate's row) or 'replay' (recompute on request);
    * hf: the recursion (``HFConfig``).
    """
    retrain_norm: str = "batch"
    mem_budget_mb: float = 1024.0
    bank_dtype: str = "float32"
    candidates: str = "all"
    candidate_list: Optional[tuple] = None
    mode: str = "bank"
    hf: HFConfig = field(default_factory=HFConfig)

    @classmethod
    def from_args(cls, args):
        """From the parsed flags (``utils.common.options.parse_args``)."""
        listed = None if args.hf_candidate_list is None else tuple(args.hf_candidate_list)
        return cls(args.retrain_norm, args.mem_budget_mb, args.bank_dtype, args.hf_candidates, listed,
                   args.hf_mode, HFConfig.from_flags(vars(args)))
