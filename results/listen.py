"""Listen to a sweep's front where you look at it: one HTML page on the sweep's parent run
(``listen/front.html``) that plays the same validation phrase as the original and as each trial on the
front renders it, the winner marked, every clip inlined (MLflow's artifact viewer shows the page in a
frame that can fetch nothing else).

The clips are the trials' own ``audio/`` examples (the first validation example, rendered at float32
when the trial finished); a front member at a quantised precision plays its trial's clip, since the
front's precisions of one trial differ in quality by less than the examples could tell apart.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from results import layout

LISTEN_ARTIFACT = "listen/front.html"


def _clip(client: MlflowClient, run_id: str, name: str, folder: Path) -> str | None:
    """A run's ``audio/<name>`` as a data URI, or None when the run has none."""
    try:
        path = client.download_artifacts(run_id, f"{layout.AUDIO_ARTIFACTS}/{name}", str(folder))
    except Exception:  # noqa: BLE001 - MLflow says "not found" with several exception types; no clip then
        return None
    return "data:audio/wav;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def listening_page(client: MlflowClient, title: str, front: pd.DataFrame, winner: pd.Series | None) -> str | None:
    """The page for ``front`` (rows of the candidate table, smallest first); None when no clip exists."""
    winner_run = None if winner is None else str(winner["run_id"])
    with tempfile.TemporaryDirectory(prefix="tonesweep-listen-") as tmp:
        rows, original = [], None
        for run_id, members in front.groupby("run_id", sort=False):
            folder = Path(tmp) / run_id
            clip = _clip(client, run_id, "resynth.wav", folder)
            if clip is None:
                continue
            original = original or _clip(client, run_id, "original.wav", folder)
            first = members.iloc[0]
            label = layout.trial_run_name(str(first["decoder"]), str(first["feature"]), float(first["params"]),
                                          str(first["trial_id"]))
            sizes = ", ".join(f"{p} {int(b):,} B" for p, b in zip(members["precision"], members["bytes"]))
            quality = float(members["quality"].min())
            rows.append((label, sizes, quality, run_id == winner_run, clip))
    if not rows:
        return None
    items = [_item("original (the instrument's own recording)", "", original)] if original else []
    items += [_item(label + (" \u2605 winner" if won else ""), f"{sizes}; quality {quality:.4g}", clip)
              for label, sizes, quality, won, clip in rows]
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__ITEMS__", "\n".join(items))


def _item(label: str, detail: str, clip: str) -> str:
    return (f'<li><b>{html.escape(label)}</b> <span>{html.escape(detail)}</span><br>'
            f'<audio controls preload="metadata" src="{clip}"></audio></li>')


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>body{font:14px system-ui,sans-serif;margin:16px} li{margin:10px 0;list-style:none} span{color:#555}
audio{width:min(480px,100%);margin-top:4px}</style></head><body>
<h1 style="font-size:17px">__TITLE__</h1>
<p>The same validation phrase, as recorded and as each trial on the front renders it (smallest first).
Press play on one, then another: a player pauses the others.</p>
<ul>
__ITEMS__
</ul>
<script>
document.querySelectorAll("audio").forEach(a => a.addEventListener("play", () =>
  document.querySelectorAll("audio").forEach(b => { if (b !== a) b.pause(); })));
</script></body></html>
"""
