"""Ray Tune's saved state of a sweep kept in an object store, signed by the driver that wrote it.

``Tuner.restore`` unpickles an experiment's state (``tuner.pkl``, the trials, the searcher): to
whoever can write that state, it is a way to run code on the driver. In an object store that is
anyone with write access under the prefix, so Ray never reads its state from there:

- Ray keeps each instrument's experiment in the driver's scratch folder (``search.place``);
- ``RayStateUpload`` copies Ray's files of it to ``<sweep>/<instrument>/ray-state/`` as objects named
  by their SHA-256, then writes ``manifest.json`` there, last, naming them and signed with
  HMAC-SHA256 under this account's sweep key (``sweep_key``), which never goes to the store;
- ``--resume`` (``download_ray_state``) reads the manifest, checks its signature, downloads each
  object and checks its digest, and only then lets ``Tuner.restore`` read the folder. A manifest not
  signed by the key, or an object that is not what it signed, is one line and nothing is unpickled.

The manifest names the experiment it belongs to (its URI), so one sweep's signed state cannot be
passed off as another's. What a storage writer can still do is delete the state (the sweep then
cannot resume) or put back an older signed manifest of the same sweep (it resumes from an earlier
point, as after a driver killed then): neither runs code.

The key: ``TONESWEEP_STATE_KEY`` (hex, at least 32 bytes) if set, else the file
``$XDG_CONFIG_HOME/tonesweep/sweep-state.key`` (``~/.config`` by default), made on first use, readable
by this account only. A sweep resumed on another machine needs the same key there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickletools
import secrets
from pathlib import Path

from cluster.object_store import Remote, delete, get_bytes, put_bytes
from common.errors import UserError
from common.files import write_bytes

STATE_FOLDER = "ray-state"
MANIFEST = "manifest.json"
FORMAT = 1
KEY_VARIABLE = "TONESWEEP_STATE_KEY"
KEY_FILE = "sweep-state.key"
KEY_BYTES = 32
TUNER_FILE = "tuner.pkl"  # Ray's mark of an experiment folder (what Tuner.can_restore looks for)


# ---------------------------------------------------------------------------- the key


def key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tonesweep" / KEY_FILE


def sweep_key(create: bool = True) -> bytes | None:
    """This account's sweep key: from ``TONESWEEP_STATE_KEY``, else from its file, made when
    ``create`` and missing (None when missing and not ``create``)."""
    text = os.environ.get(KEY_VARIABLE)
    if text:
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            raise UserError(f"{KEY_VARIABLE}: not hexadecimal; set it to the key file's contents") from None
        if len(key) < KEY_BYTES:
            raise UserError(f"{KEY_VARIABLE}: {len(key)} bytes; a sweep key has at least {KEY_BYTES}")
        return key
    path = key_path()
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another driver made it just now
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(KEY_BYTES) + "\n")
    return bytes.fromhex(path.read_text().strip())


def fingerprint(key: bytes) -> str:
    """Names a key without giving it away (written in the manifest, shown in errors)."""
    return hashlib.sha256(b"tonesweep sweep key\0" + key).hexdigest()[:16]


def _signature(key: bytes, experiment: str, files: dict[str, str]) -> str:
    body = json.dumps({"format": FORMAT, "experiment": experiment, "files": files}, sort_keys=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------- the driver's side


Stamp = tuple[int, int]  # a file's (mtime_ns, size): whether it changed since it was last read


def changed_ray_files(experiment: Path, own: set[str], stamps: dict[str, Stamp]) -> dict[str, tuple[Stamp, bytes]]:
    """Ray's files of an experiment folder that changed since ``stamps`` (what was read last time), with
    their new stamps and bytes; top level only (Ray's per-trial logs stay on the driver; ``own`` names
    tonesweep's bookkeeping beside them). Unchanged files are not read again (this runs every second
    while trials train). A file Ray is still writing (cut-short JSON or pickle) is left out, and the
    caller keeps the previous version."""
    found: dict[str, tuple[Stamp, bytes]] = {}
    for path in sorted(experiment.iterdir()):
        if path.name.startswith(".") or path.name in own or not path.is_file():
            continue
        try:
            info = path.stat()
            stamp = (info.st_mtime_ns, info.st_size)
            if stamps.get(path.name) == stamp:
                continue
            data = path.read_bytes()
        except FileNotFoundError:  # replaced since listed
            continue
        if _complete(path.name, data):
            found[path.name] = (stamp, data)
    return found


def _complete(name: str, data: bytes) -> bool:
    """Whether a ``.json`` or ``.pkl`` file is a whole JSON document or a whole pickle (read as opcodes,
    never loaded; the name does not say which: Ray's searcher state is a ``.pkl`` holding tonesweep's JSON)."""
    if not name.endswith((".json", ".pkl")):
        return True
    try:
        json.loads(data)
        return True
    except ValueError:
        pass
    try:
        for _ in pickletools.genops(data):
            pass
        return True
    except ValueError:
        return False


class RayStateUpload:
    """Uploads, signed, Ray's state of every instrument's experiment in the driver's scratch folder of a
    sweep kept in a store (``search.callbacks.StorageSync`` calls it with the bookkeeping upload).

    Per experiment: new objects first, then the manifest, then the objects the manifest no longer
    names, so a driver killed at any point leaves a manifest whose objects are all there."""

    def __init__(self, local: Path, remote: Remote, own: set[str]):
        self.local, self.remote, self.own = Path(local), remote, set(own)
        self._signed: dict[str, dict[str, str]] = {}      # instrument -> the files its last manifest named
        self._stamps: dict[str, dict[str, Stamp]] = {}    # instrument -> stamps of the files read for it
        self._key: bytes | None = None

    def __call__(self) -> None:
        if not self.local.is_dir():
            return
        for experiment in sorted(p for p in self.local.iterdir() if (p / TUNER_FILE).is_file()):
            stamps = self._stamps.setdefault(experiment.name, {})
            found = changed_ray_files(experiment, self.own, stamps)
            if found:
                self._upload(experiment.name, {name: data for name, (_, data) in found.items()})
                stamps.update({name: stamp for name, (stamp, _) in found.items()})

    def _upload(self, instrument: str, found: dict[str, bytes]) -> None:
        signed = self._signed.get(instrument, {})
        files = {**signed, **{name: hashlib.sha256(data).hexdigest() for name, data in found.items()}}
        if files == signed:
            return
        state = self.remote.child(instrument, STATE_FOLDER)
        for name, digest in files.items():
            if name in found and digest not in signed.values():
                put_bytes(state.child(digest), found[name])
        key = self._key = self._key or sweep_key()
        experiment = self.remote.child(instrument).uri
        manifest = {"format": FORMAT, "experiment": experiment, "files": files, "key": fingerprint(key),
                    "signature": _signature(key, experiment, files)}
        put_bytes(state.child(MANIFEST), json.dumps(manifest, indent=1, sort_keys=True).encode())
        for digest in set(signed.values()) - set(files.values()):
            delete(state.child(digest))
        self._signed[instrument] = files


# ---------------------------------------------------------------------------- --resume


def download_ray_state(remote: Remote, instrument: str, local: Path) -> bool:
    """Ray's signed state of ``instrument``'s experiment, checked, into the folder ``local``; False when
    the store has none (the sweep stopped before Ray saved any). A manifest this account's key did not
    sign, or an object that is not what it signed, is a ``UserError`` and nothing is written."""
    experiment = remote.child(instrument)
    state = experiment.child(STATE_FOLDER)
    raw = get_bytes(state.child(MANIFEST))
    if raw is None:
        if get_bytes(experiment.child(TUNER_FILE)) is not None:
            raise UserError(f"{experiment.uri}: Ray's state of this sweep was saved unsigned, by an older "
                            "tonesweep; resuming would unpickle whatever is there, so it is not resumed "
                            "(start a new sweep with another --name)")
        return False
    files = _checked_manifest(raw, state.child(MANIFEST).uri, experiment.uri)
    contents = {}
    for name, digest in files.items():
        data = get_bytes(state.child(digest))
        if data is None or hashlib.sha256(data).hexdigest() != digest:
            raise UserError(f"{state.child(digest).uri}: missing or not what the signed manifest names "
                            f"({name}); Ray's state of this sweep is damaged and was not resumed")
        contents[name] = data
    local.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        write_bytes(local / name, data)
    return True


def _checked_manifest(raw: bytes, where: str, experiment: str) -> dict[str, str]:
    """The files a manifest names, once its signature is this account's key's; else a ``UserError``."""
    try:
        manifest = json.loads(raw)
        files, signature = manifest["files"], str(manifest["signature"])
        if manifest.get("format") != FORMAT or not isinstance(files, dict) or not all(
                _is_name(n) and _is_digest(d) for n, d in files.items()):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{where}: not a tonesweep state manifest; Ray's state of this sweep is damaged "
                        "and was not resumed") from None
    key = sweep_key(create=False)
    if key is None or manifest.get("key") != fingerprint(key):
        where_key = KEY_VARIABLE if os.environ.get(KEY_VARIABLE) else str(key_path())
        raise UserError(f"{where}: signed with another sweep key ({manifest.get('key')}) than this account's "
                        f"({where_key}{', ' + fingerprint(key) if key else ', none'}); resume where the sweep "
                        f"started, or give this machine that key ({KEY_VARIABLE})")
    if manifest.get("experiment") != experiment or not hmac.compare_digest(
            signature, _signature(key, experiment, files)):
        raise UserError(f"{where}: its signature does not match; something other than this sweep's driver "
                        "wrote Ray's state there, so nothing of it was unpickled and the sweep was not resumed")
    return files


def _is_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


def _is_digest(digest) -> bool:
    return isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
