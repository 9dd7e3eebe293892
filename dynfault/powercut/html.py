"""`--html`: one self-contained page, each vulnerability's minimal state drawn as a timeline of
the journal's operations: persisted, lost, torn, acknowledged, and after the crash."""

from __future__ import annotations

import html
import os

from dynfault.powercut.journal import Op
from dynfault.powercut.report import op_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dynfault.powercut.model import State
    from dynfault.powercut.result import Result

__all__ = ["page"]

COLORS = {"persisted": "#4caf50", "lost": "#e53935", "torn": "#fb8c00", "ack": "#1e88e5",
          "barrier": "#616161", "after the crash": "#e0e0e0"}
BOX, GAP = 26, 4
STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h2{font-size:16px;margin:1.6em 0 .3em}code{background:#f4f4f4;padding:1px 4px}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:middle}svg text{font:11px monospace}"""


def _status(op: Op, state: State) -> str:
    if op.seq >= state.k:
        return "after the crash"
    if op.kind == "ack":
        return "ack"
    if op.seq in state.lost:
        return "lost"
    if state.torn is not None and state.torn[0] == op.seq:
        return "torn"
    if op.kind in ("fsync", "fdatasync", "sync"):
        return "barrier"
    return "persisted"


def _timeline(ops: list[Op], state: State, marked: set[int], cwd: str) -> str:
    width = len(ops) * (BOX + GAP) + 10
    parts = [f'<svg width="{width + 90}" height="{BOX + 130}" role="img">']
    for op in ops:
        x = 5 + op.seq * (BOX + GAP)
        status = _status(op, state)
        stroke = ' stroke="#000" stroke-width="3"' if op.seq in marked else ""
        title = html.escape(f"#{op.seq} {op_text(op, cwd)}: {status}")
        parts.append(f'<rect x="{x}" y="10" width="{BOX}" height="{BOX}" rx="4" '
                     f'fill="{COLORS[status]}"{stroke}><title>{title}</title></rect>')
        label = op.kind if op.kind != "ack" else f"ack {op.text or ''}"[:18]
        if op.path and op.kind != "ack":
            label += " " + os.path.basename(op.dest or op.path)
        parts.append(f'<text x="{x + BOX // 2 - 3}" y="{BOX + 20}" text-anchor="start" '
                     f'transform="rotate(60 {x + BOX // 2 - 3} {BOX + 20})">'
                     f'{html.escape(label)}</text>')
    crash = 5 + state.k * (BOX + GAP) - GAP // 2
    parts.append(f'<line x1="{crash}" y1="2" x2="{crash}" y2="{BOX + 18}" stroke="#000" '
                 'stroke-dasharray="3 2"/><text x="' + str(crash + 3) + '" y="8">crash</text>')
    parts.append("</svg>")
    return "".join(parts)


def page(result: Result) -> str:
    """The whole page, no external resource."""
    cwd = result.journal.cwd
    legend = "".join(f'<span><i style="background:{c}"></i>{html.escape(n)}</span>'
                     for n, c in COLORS.items())
    body = [f"<h1>dynfault powercut: {len(result.vulnerabilities)} vulnerabilities</h1>",
            f"<p>{result.checked} states checked under {html.escape(', '.join(result.models))}; "
            f"journal <code>{html.escape(result.journal.path)}</code></p>",
            f'<p class="legend">{legend}</p>']
    for number, vulnerability in enumerate(result.vulnerabilities, 1):
        state = result.minimal.get(vulnerability.state)
        ops_text = "<br>".join(html.escape(f"#{op.seq} {op_text(op, cwd)}")
                               for op in vulnerability.ops)
        body.append(f"<h2>{number}. {vulnerability.kind} "
                    f"({html.escape(', '.join(vulnerability.models))}, "
                    f"{vulnerability.failing}/{vulnerability.checked} states)</h2>")
        body.append(f"<p>{ops_text}</p>")
        if state is not None:
            body.append(_timeline(result.journal.ops, state,
                                  {op.seq for op in vulnerability.ops}, cwd))
        body.append(f"<p>fix: {html.escape(vulnerability.fix)}<br>"
                    f"reproduce: <code>{html.escape(vulnerability.reproducer)}</code></p>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>dynfault powercut"
            f"</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
