"""Everything that knows audio, TensorFlow and ddsp; never Ray or MLflow.

Rooms, dependencies pointing one way (tests/test_layering.py enforces them); the names, errors and
file helpers every package shares are the floor below, ``common``:

    ddsp_compat, runtime   the one ddsp import, TensorFlow's quiet start-up
    data/      audio I/O, features, the dataset format and reading API, `prepare`, demo audio
    model/     config, decoders, synth, sizes, the trained model and its loss, quantization
    training/  the training loop and held-out evaluation            (imports data/, model/)
    export/    SavedModel + TF.js bundle, model card, tone transfer (imports data/, model/; never training/)
"""
