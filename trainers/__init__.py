"""Everything that knows audio, TensorFlow and ddsp; never Ray or MLflow.

Rooms, dependencies pointing one way (tests/test_layering.py enforces them):

    constants, errors, files, ddsp_compat     shared by all (no TensorFlow in the first three)
    data/      audio I/O, features, the dataset format and reading API, `prepare`, demo audio
    model/     config, decoders, synth, sizes, the trained model and its loss, quantization
    training/  the training loop and held-out evaluation            (imports data/, model/)
    export/    SavedModel + TF.js bundle, tone transfer              (imports data/, model/; never training/)
"""
