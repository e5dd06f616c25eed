"""The floor every package stands on: names, the user-error type, files, paths, values, and the
helpers for ports, waiting on services and finding Node.js. Standard library (and psutil) only:
anything may import it, it imports nothing of tonesweep's.

    constants   names every package shares (sample rate, precisions, trial statuses, seeds)
    errors      ``UserError``: one line naming the file or field and what to do (exit 2)
    files       atomic JSON, folders tonesweep owns, scratch and staging folders
    paths       names stay names, paths stay inside their roots, outputs apart from inputs
    values      numbers that may be missing, text, NaN or infinite
    net         free ports, and waiting until a service answers
    node        Node.js and the npm packages `make install` vendors
    trial       the record of a resolved trial (a trial folder on disk and what the registry says)
"""
