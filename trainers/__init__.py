"""Data preparation, DDSP models, training, evaluation and export. Knows TF/Keras/ddsp; never Ray or MLflow."""
