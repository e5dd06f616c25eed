"""Node.js and the npm packages `make install` puts in node_modules/: one lookup for every user
(export's checks in Node, the lean rewrite's op lists, the page's vendored files, the tests' and
benchmarks' browser harness). Nothing comes from a CDN; a missing piece is one line saying how to
install it."""

from __future__ import annotations

import shutil
from pathlib import Path

from common.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout: package.json, node_modules/
NODE_MODULES = PROJECT_ROOT / "node_modules"


def npm_path(relative: str) -> Path:
    """``node_modules/<relative>`` (a file or folder of an installed npm package)."""
    path = NODE_MODULES / relative
    if not path.exists():
        raise UserError(f"{path}: missing; run `make install` (npm install) to install the JavaScript packages")
    return path


def node_binary() -> str:
    """The ``node`` executable on PATH."""
    node = shutil.which("node")
    if node is None:
        raise UserError("node: not found on PATH; install Node.js 20 (`make install` uses the system's)")
    return node
