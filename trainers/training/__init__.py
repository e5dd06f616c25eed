"""One trial: the training loop (``train.train_trial``) and held-out evaluation (``evaluate``)."""
