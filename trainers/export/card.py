"""The model card (``model-card.json``): its name, format and its one reader. No TensorFlow.

A bundle folder is marked by its card; the card says what a runtime needs (layout, scaling
statistics), what was verified, and which files the bundle owns (``files``: what a re-export may
replace). ``bundle`` writes it; ``transfer``, ``export`` (replacing a bundle) and ``tonesweep serve``
read it through this module. docs/architecture.md §5 lists its keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import UserError
from common.files import damaged_files, listed_files
from common.paths import contained

CARD_FORMAT = "tonesweep-model-card/1"
CARD = "model-card.json"
FILE_DIGESTS = "sha256"  # card key: {file: sha256 of its bytes}, every file the bundle owns but the card


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """The bundle's model card; a one-line ``UserError`` for a missing folder, a folder without a
    card, a card that is not JSON or one of another format."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"{model_dir}: model folder not found; pass the --out folder of `tonesweep export`")
    card_path = model_dir / CARD
    if not card_path.exists():
        raise UserError(f"{model_dir}: not an export bundle (no {CARD}); pass the --out folder of `tonesweep export`")
    try:
        card = json.loads(card_path.read_text())
    except ValueError:  # not JSON, not UTF-8
        raise UserError(f"{card_path}: not valid JSON; re-export the model with `tonesweep export`") from None
    found = card.get("format") if isinstance(card, dict) else None
    if found != CARD_FORMAT:
        raise UserError(f"{card_path}: model card format {found!r}, this tonesweep reads {CARD_FORMAT!r}; "
                        "re-export the model with this version's `tonesweep export`")
    return card


def check_bundle_files(model_dir: str | Path, card: dict[str, Any], names: list[str] | None = None) -> None:
    """The files the card records a sha256 of (``FILE_DIGESTS``; all, or ``names``) are there with the
    bytes export wrote: a flipped bit in a weight shard or a cut-short ``model.json`` is one line naming
    the file, before anything reads it. Cards written before the digests existed are not checked."""
    model_dir = Path(model_dir)
    digests = card.get(FILE_DIGESTS)
    if not isinstance(digests, dict):
        return
    wanted = {name: digest for name, digest in digests.items() if names is None or name in names}
    for name in wanted:
        contained(model_dir, name, f"{model_dir / CARD}: {FILE_DIGESTS}")
    missing, changed = damaged_files(model_dir, wanted)
    if missing or changed:
        state = "missing" if missing else "damaged (its bytes differ from those `tonesweep export` wrote)"
        raise UserError(f"{model_dir / (missing or changed)[0]}: {state}; re-export the bundle with `tonesweep export`")


def find_card(folder: str | Path) -> dict[str, Any] | None:
    """The card of ``folder`` when it is a tonesweep bundle, else None (no card, unreadable, another format)."""
    try:
        return read_card(folder)
    except (UserError, OSError):
        return None


def owned_files(out_dir: Path) -> list[str]:
    """What an earlier export wrote into ``out_dir``: the files its card lists ([] without a card),
    each checked to stay inside the folder.

    Cards written before the list existed own their card, ``saved_model/`` and ``tfjs/``.
    """
    card = find_card(out_dir)
    if card is None:
        return []
    if "files" in card:
        return [contained(out_dir, name, f"{out_dir / CARD}: files").relative_to(out_dir).as_posix()
                for name in card["files"]]
    return [CARD] + [name for name in listed_files(out_dir) if name.split("/")[0] in ("saved_model", "tfjs")]
