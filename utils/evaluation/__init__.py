"""Comparison against Retrain, the noise floor of the distance, the linearity diagnostic."""
