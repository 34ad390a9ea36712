"""Server-drawn SVG for the run page: the job DAG (statuses, critical path) and the Gantt timeline.

Both take the plain data ``data.run_data`` builds (so the JSON and the picture agree) and return
markup in which every name from a pipeline is escaped; links point at each job's log. Shapes carry a
status class for colour and a status icon and word for reading without colour.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

#: A status icon for each job/run status: never colour alone.
ICONS: Mapping[str, str] = {
    "success": "✓",
    "failed": "✗",
    "timed_out": "⏱",
    "skipped": "⊘",
    "cached": "⟲",
    "cancelled": "■",
    "running": "▶",
    "pending": "…",
    "waiting": "⏸",
    "manual": "⏸",
    "queued": "…",
    "resuming": "…",
    "cancelling": "■",
}

_NODE_W, _NODE_H, _GAP_X, _GAP_Y = 190, 34, 50, 14
_MAX_LABEL = 24


def icon(status: str) -> str:
    """The icon of a status ("?" for one not known)."""
    return ICONS.get(status, "?")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 1] + "…"


def _job_href(job_id: str) -> str:
    return f"jobs/{urllib.parse.quote(job_id, safe='')}/log"


def dag_svg(dag: Mapping[str, Any], *, base: str) -> str:
    """The DAG as an ``<svg>``: one box per job in columns by depth, edges left to right, the critical
    path drawn thick and dashed-outlined. ``base`` is the run page URL (job links are relative to it)."""
    nodes: Sequence[Mapping[str, Any]] = dag["nodes"]
    if not nodes:
        return ""
    pos = {n["id"]: (n["layer"] * (_NODE_W + _GAP_X) + 4, n["row"] * (_NODE_H + _GAP_Y) + 4) for n in nodes}
    width = max(x for x, _ in pos.values()) + _NODE_W + 8
    height = max(y for _, y in pos.values()) + _NODE_H + 8
    out = [
        f'<svg class="dag" role="img" aria-label="job graph" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for edge in dag["edges"]:
        a, b = pos.get(edge["from"]), pos.get(edge["to"])
        if a is None or b is None:
            continue
        x1, y1 = a[0] + _NODE_W, a[1] + _NODE_H / 2
        x2, y2 = b[0], b[1] + _NODE_H / 2
        mid = (x1 + x2) / 2
        cls = "edge crit" if edge.get("critical") else "edge"
        out.append(f'<path class="{cls}" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>')
    for n in nodes:
        x, y = pos[n["id"]]
        status = str(n["status"])
        cls = f"node s-{_e(status)}" + (" crit" if n.get("critical") else "")
        label = f"{icon(status)} {_short(str(n['id']))}"
        title = f"{n['id']}: {status}" + (" (critical path)" if n.get("critical") else "")
        out.append(
            f'<a href="{_e(base.rstrip("/") + "/" + _job_href(str(n["id"])))}" class="{cls}">'
            f"<title>{_e(title)}</title>"
            f'<rect x="{x}" y="{y}" width="{_NODE_W}" height="{_NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + _NODE_H / 2 + 5}">{_e(label)}</text></a>'
        )
    out.append("</svg>")
    return "".join(out)


def gantt_svg(gantt: Mapping[str, Any], *, base: str) -> str:
    """The timeline as an ``<svg>``: a row per job with its queue, cache-restore and run segments."""
    rows: Sequence[Mapping[str, Any]] = gantt["rows"]
    span = float(gantt["span_s"]) or 1.0
    if not rows:
        return ""
    label_w, bar_w, row_h = 200, 600, 20
    height = len(rows) * row_h + 28
    width = label_w + bar_w + 70
    scale = bar_w / span
    out = [
        f'<svg class="gantt" role="img" aria-label="job timeline" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):
        t = span * i / 4
        x = label_w + t * scale
        out.append(f'<line class="tick" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 16}"/>')
        out.append(f'<text class="axis" x="{x:.1f}" y="{height - 4}">{t:.1f}s</text>')
    for i, r in enumerate(rows):
        y = i * row_h + 2
        status = str(r["status"])
        href = _e(base.rstrip("/") + "/" + _job_href(str(r["id"])))
        out.append(
            f'<a href="{href}"><text class="label" x="4" y="{y + 14}">'
            f"{_e(icon(status) + ' ' + _short(str(r['id'])))}</text></a>"
        )
        for seg in r["segments"]:
            x = label_w + float(seg["start_s"]) * scale
            w = max(float(seg["duration_s"]) * scale, 1.0)
            kind = _e(seg["kind"])
            out.append(
                f'<rect class="seg {kind} s-{_e(status)}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" '
                f'height="{row_h - 6}"><title>{_e(r["id"])}: {kind} {float(seg["duration_s"]):.2f}s'
                f"</title></rect>"
            )
        total = float(r.get("total_s") or 0.0)
        end_x = label_w + (float(r.get("end_s") or 0.0)) * scale + 4
        out.append(f'<text class="axis" x="{end_x:.1f}" y="{y + 14}">{total:.1f}s</text>')
    out.append("</svg>")
    return "".join(out)


def sparkline_svg(values: Sequence[float], *, width: int = 120, height: int = 24) -> str:
    """A tiny line of ``values`` (durations), oldest first."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )
    return (
        f'<svg class="spark" role="img" aria-label="duration trend" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline points="{points}"/></svg>'
    )
