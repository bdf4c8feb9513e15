"""The Hessian-free method (Proposed): recursion, bank, replay, torchrun, certified release."""
