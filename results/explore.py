"""The interactive size-vs-quality view of one sweep: one self-contained HTML file (no script or font
from anywhere else), logged to the sweep's parent run as ``pareto/size-vs-quality.html``.

Same two steps as ``results.plot``: ``explorer_points`` computes what to show from the candidate table
(pure pandas), ``explorer_html`` writes the page. Every candidate is a point (x = shipped bytes, log
scale; y = quality, lower is better); the front is a step line, the winner a star; hovering a point
shows its trial, precision and numbers, clicking it pins them with the trial's MLflow run.

MLflow's artifact viewer shows an HTML artifact in a frame that may run scripts but may not navigate
or open windows, so inside MLflow a point names its run (name and id) instead of leaving the page; the
same file saved and opened on its own follows the links when ``ui_url`` was known.
"""

from __future__ import annotations

import html
import json
import math

import pandas as pd

from results.layout import trial_run_name
from results.select import Selection

EXPLORER_ARTIFACT = "pareto/size-vs-quality.html"
NUMBER_COLUMNS = ("bytes", "quality", "pitch_error_cents", "rtf_wasm", "params")  # a point's columns: numbers,
TEXT_COLUMNS = ("run_id", "trial_id", "precision", "decoder", "feature")             # and text


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def explorer_points(table: pd.DataFrame, front: pd.DataFrame, selection: Selection) -> list[dict]:
    """One dict per candidate: its columns, ``name`` (the run's name), ``front`` (a row of ``front``, the
    report's ``front_rows``), ``winner``, ``slow``."""
    winner = selection.winner
    points = []
    for index, row in table[table["candidate"]].iterrows():
        point = {key: _number(row.get(key)) for key in NUMBER_COLUMNS}
        point.update({key: None if pd.isna(row.get(key)) else str(row.get(key)) for key in TEXT_COLUMNS})
        params = point["params"]
        point["name"] = (trial_run_name(point["decoder"] or "?", point["feature"] or "?", params, point["trial_id"] or "")
                         if params is not None else str(point["trial_id"]))
        point["front"] = index in front.index
        point["winner"] = bool(winner is not None and index == winner.name)
        point["slow"] = not bool(selection.criteria.speed_ok(row.get("rtf_wasm")))
        points.append(point)
    return points


def explorer_html(table: pd.DataFrame, front: pd.DataFrame, selection: Selection, title: str, experiment_id: str,
                  ui_url: str | None = None) -> str:
    """The page, every number inlined. ``ui_url``: MLflow's address when known (an http tracking URI)."""
    data = {"title": title, "points": explorer_points(table, front, selection), "bar": _number(selection.bar),
            "reason": selection.reason, "experiment": experiment_id, "ui": ui_url.rstrip("/") if ui_url else None}
    payload = json.dumps(data).replace("</", "<\\/")  # never closes the script element early
    return _PAGE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:16px;color:#222}
 h1{font-size:17px;margin:0 0 4px} p{margin:4px 0}
 #plot{border:1px solid #ddd;background:#fff;max-width:100%;height:auto}
 .pt{cursor:pointer} .pt:hover{stroke-width:3}
 #tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:6px 8px;border-radius:4px;font-size:12px;display:none;white-space:pre}
 #pinned{margin-top:8px;padding:8px;border:1px solid #ccc;border-radius:4px;min-height:2.5em;white-space:pre-wrap}
 .legend span{margin-right:14px} table{border-collapse:collapse;margin-top:10px;font-size:13px}
 td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:right} td:first-child,th:first-child{text-align:left}
</style></head><body>
<h1 id="title"></h1><p id="reason"></p>
<p class="legend"><span>&#9679; GRU &#9632; CNN</span><span style="color:#1f77b4">loudness</span><span style="color:#ff7f0e">RMS</span>
<span>filled float32 &middot; half float16 &middot; hollow uint8</span><span>&#9733; winner</span><span>&mdash; front</span>
<span style="color:#c00">&times; below the speed bar</span></p>
<svg id="plot" width="900" height="520" viewBox="0 0 900 520" role="img" aria-label="size against quality"></svg>
<div id="tip"></div><div id="pinned">Click a point to pin its trial here.</div>
<table id="front"><thead><tr><th>front (smallest first)</th><th>precision</th><th>bytes</th><th>quality</th>
<th>pitch error (cents)</th><th>wasm &times; real time</th></tr></thead><tbody></tbody></table>
<script>
const D = __DATA__;
const NS = "http://www.w3.org/2000/svg", W = 900, H = 520, L = 80, R = 20, T = 20, B = 60;
const svg = document.getElementById("plot"), tip = document.getElementById("tip"), pinned = document.getElementById("pinned");
document.getElementById("title").textContent = D.title;
document.getElementById("reason").textContent = D.reason ? "selection: " + D.reason : "";
const pts = D.points.filter(p => p.bytes > 0 && p.quality !== null);
const describe = p => `${p.name}  (${p.precision})\\nbytes ${Math.round(p.bytes).toLocaleString()}  quality ${p.quality.toPrecision(4)}` +
    `\\npitch error ${p.pitch_error_cents === null ? "-" : p.pitch_error_cents.toFixed(1) + " cents"}` +
    `  wasm ${p.rtf_wasm === null ? "-" : p.rtf_wasm.toFixed(1) + "x real time"}` +
    (p.front ? "\\non the front" : "") + (p.winner ? "  WINNER" : "") + (p.slow ? "\\nbelow the speed bar" : "");
function el(name, attrs, parent) { const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]); (parent || svg).appendChild(e); return e; }
if (!pts.length) { el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}).textContent = "no finished candidates"; }
else {
  const lx = pts.map(p => Math.log10(p.bytes)), ys = pts.map(p => p.quality).concat(D.bar === null ? [] : [D.bar]);
  let x0 = Math.floor(Math.min(...lx) * 10) / 10 - 0.05, x1 = Math.ceil(Math.max(...lx) * 10) / 10 + 0.05;
  let y0 = Math.min(...ys), y1 = Math.max(...ys); const pad = (y1 - y0) * 0.08 || 0.01; y0 -= pad; y1 += pad;
  const X = b => L + (Math.log10(b) - x0) / (x1 - x0) * (W - L - R), Y = q => H - B - (q - y0) / (y1 - y0) * (H - T - B);
  for (let d = Math.floor(x0); d <= x1; d++) for (const m of (x1 - x0 > 3 ? [1] : [1, 2, 5])) {  // 1-2-5 ticks
    const e = d + Math.log10(m); if (e < x0 || e > x1) continue; const x = L + (e - x0) / (x1 - x0) * (W - L - R);
    el("line", {x1: x, x2: x, y1: T, y2: H - B, stroke: "#eee"});
    el("text", {x: x, y: H - B + 16, "text-anchor": "middle", "font-size": 11}).textContent = Math.round(10 ** e).toLocaleString(); }
  for (let i = 0; i <= 5; i++) { const q = y0 + (y1 - y0) * i / 5, y = Y(q);
    el("line", {x1: L, x2: W - R, y1: y, y2: y, stroke: "#eee"});
    el("text", {x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 11}).textContent = q.toPrecision(3); }
  el("text", {x: (W + L) / 2, y: H - 18, "text-anchor": "middle"}).textContent = "shipped bundle bytes (log scale)";
  el("text", {x: 16, y: (H - B) / 2, transform: `rotate(-90 16 ${(H - B) / 2})`, "text-anchor": "middle"}).textContent = "quality: spectral loss (lower is better)";
  if (D.bar !== null) { el("line", {x1: L, x2: W - R, y1: Y(D.bar), y2: Y(D.bar), stroke: "green", "stroke-dasharray": "6 4"});
    el("text", {x: W - R - 4, y: Y(D.bar) - 4, "text-anchor": "end", fill: "green", "font-size": 11}).textContent = "quality bar"; }
  const front = pts.filter(p => p.front).sort((a, b) => a.bytes - b.bytes);
  if (front.length) { let d = `M${X(front[0].bytes)},${Y(front[0].quality)}`;
    for (let i = 1; i < front.length; i++) d += `H${X(front[i].bytes)}V${Y(front[i].quality)}`;
    el("path", {d: d, fill: "none", stroke: "#000", "stroke-width": 1.2}); }
  const colour = p => p.feature === "rms" ? "#ff7f0e" : p.feature === "loudness" ? "#1f77b4" : "#777";
  const fill = p => p.precision === "float32" ? 1 : p.precision === "float16" ? 0.45 : 0;
  for (const p of pts) { const x = X(p.bytes), y = Y(p.quality), c = colour(p);
    const attrs = {class: "pt", fill: c, "fill-opacity": fill(p), stroke: c, "stroke-width": 1.5, "data-run": p.run_id};
    const shape = p.decoder === "cnn" ? el("rect", {...attrs, x: x - 5, y: y - 5, width: 10, height: 10})
                                      : el("circle", {...attrs, cx: x, cy: y, r: 5.5});
    if (p.slow) el("text", {x: x + 6, y: y - 5, fill: "#c00", "font-size": 12}).textContent = "\\u00d7";
    if (p.winner) el("text", {x: x, y: y + 9, "text-anchor": "middle", "font-size": 26, fill: "gold", stroke: "#000", "pointer-events": "none"}).textContent = "\\u2605";
    shape.addEventListener("mousemove", ev => { tip.style.display = "block"; tip.textContent = describe(p);
      tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; });
    shape.addEventListener("mouseleave", () => { tip.style.display = "none"; });
    shape.addEventListener("click", () => pin(p)); }
  const body = document.querySelector("#front tbody");
  for (const p of front) { const tr = document.createElement("tr");
    for (const v of [p.name + (p.winner ? " \\u2605" : ""), p.precision, Math.round(p.bytes).toLocaleString(), p.quality.toPrecision(4),
                     p.pitch_error_cents === null ? "-" : p.pitch_error_cents.toFixed(1), p.rtf_wasm === null ? "-" : p.rtf_wasm.toFixed(1)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    tr.style.cursor = "pointer"; tr.addEventListener("click", () => pin(p)); body.appendChild(tr); }
}
function pin(p) {
  const route = `#/experiments/${D.experiment}/runs/${p.run_id}`;
  pinned.textContent = describe(p) + `\\nMLflow run: ${p.name}, id ${p.run_id}`;
  if (D.ui) { const a = document.createElement("a"); a.href = D.ui + "/" + route; a.target = "_blank";
    a.textContent = "  open the run"; pinned.appendChild(a); }
}
</script></body></html>
"""
