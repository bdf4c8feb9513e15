"""The curvature engines: Hessian-vector products, per-layer rules, exact Hessians."""
