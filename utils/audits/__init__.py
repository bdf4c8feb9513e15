"""The audits: MIA-U, LiRA and its shadow models, U-LiRA, ROC curves, targets, figures."""
