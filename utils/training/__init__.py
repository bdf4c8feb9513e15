"""The network as a function of a flat w, clipped SGD, retraining, the forget set."""
