"""What a trial needs on the node it runs on: its output folder and its dataset.

With a local ``--storage`` both are plain folders. With an object store, nothing is shared with the
driver's disk: the trial works in a scratch folder of this node kept in step with
``<trials>/<trial id>/`` in the store (``TrialFolder``), and reads a node-local copy of the dataset
the driver published there (``dataset_on_this_node``). Layout: ``search.place``.
"""

from __future__ import annotations

import shutil

from cluster.object_store import Remote, download, mirror
from common.errors import UserError
from common.files import account_folder, private_tempdir, remove_stale_tempdirs
from common.paths import check_name, contained, is_uri
from trainers.data.dataset import MANIFEST

DATASETS = "datasets"      # node-local dataset copies: <tmp>/tonesweep-<uid>/datasets/<name>
SCRATCH_PREFIX = "tonesweep-trial-"


class TrialFolder:
    """A trial's output folder: ``<trials>/<trial id>/`` itself, or, when ``trials`` is in an object
    store, a scratch folder on this node mirrored to ``<trials>/<trial id>/`` there.

    In the store: ``open`` downloads what an earlier attempt uploaded (a resumed trial continues from
    its checkpoint, on whichever node it lands), ``report`` uploads the trainer checkpoint written
    just before each progress report, ``finish`` uploads the whole folder, ``close`` removes the scratch.
    """

    CHECKPOINT = "checkpoint"

    def __init__(self, trials: str, trial_id: str):
        self.remote = Remote(trials).child(check_name(trial_id, "trial id")) if is_uri(trials) else None
        if self.remote is None:
            self._scratch = None
            self.local = contained(trials, trial_id, "trial id")
        else:
            remove_stale_tempdirs(SCRATCH_PREFIX)  # what killed trials on this node left
            self._scratch = private_tempdir(SCRATCH_PREFIX)
            self.local = self._scratch / trial_id
            download(self.remote, self.local)

    @property
    def location(self) -> str:
        """Where the driver finds the folder: the object-store URI, or the local path."""
        return self.remote.uri if self.remote else str(self.local)

    def report(self) -> None:
        checkpoint = self.local / self.CHECKPOINT
        if self.remote and checkpoint.is_dir():
            mirror(checkpoint, self.remote.child(self.CHECKPOINT))

    def finish(self) -> None:
        if self.remote and self.local.is_dir():
            mirror(self.local, self.remote)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def dataset_on_this_node(location: str) -> str:
    """A dataset folder to read on this node: ``location`` itself, or a node-local copy of a
    published dataset, downloaded once per node (``<tmp>/tonesweep-<uid>/datasets/<name>``; a
    download lands under a private name and is renamed into place, so trials starting together
    never read half a copy)."""
    if not is_uri(location):
        return location
    remote = Remote(location)
    base = account_folder(DATASETS)
    target = base / check_name(remote.path.rsplit("/", 1)[-1], "dataset")
    if (target / MANIFEST).is_file():
        return str(target)
    remove_stale_tempdirs(".partial-", base)  # downloads of trials killed on this node
    partial = private_tempdir(".partial-", base)
    try:
        if not download(remote, partial / "copy") or not (partial / "copy" / MANIFEST).is_file():
            raise UserError(f"{location}: no published dataset there (its {MANIFEST} is missing)")
        try:
            (partial / "copy").rename(target)
        except OSError:  # another trial on this node got there first
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return str(target)
