"""One trial: the training loop (``train.train_trial``) and held-out evaluation (``evaluate``, with the pitch
and loudness it measures in ``measures``)."""
