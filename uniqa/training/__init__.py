"""Pre-training: the contrastive loss (``loss``) and the training loop built on it."""
