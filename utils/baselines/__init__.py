"""The baselines: NU and IJ (second order), fine-tuning and NegGrad (first order)."""
