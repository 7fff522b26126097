"""The flow's report as one document model rendered by two Jinja templates (``templates/``):
report.md (no autoescaping; cells escaped for markdown by the ``md`` filter) and report.html
(autoescaping on). Both iterate over the same sections, so they carry the same summary, tables,
explanations and figures.

A section: ``title``, optional ``text`` (paragraphs), ``table`` (``header``, ``rows`` of cells)
and ``figure`` (a PNG's name, with a ``caption``).
"""

from __future__ import annotations

import base64
import functools
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from doping.arch import PHASES

if TYPE_CHECKING:
    from doping.flow_report import FlowReport

TEMPLATES = Path(__file__).with_name("templates")


def md_escape(text) -> str:
    """Text safe inside a markdown table cell or paragraph: ``&``, ``<`` and ``>`` as HTML entities
    (markdown renderers pass raw HTML through), the characters markdown acts on inside a line
    backslash-escaped, a line start that would open a heading or list escaped, newlines flattened."""
    text = escape(str(text), quote=False).replace("\n", " ").replace("\r", " ")
    text = "".join("\\" + ch if ch in "\\`*_{}[]|" else ch for ch in text)
    if m := re.match(r"\d+(?=[.)](\s|$))", text):  # "1." would open an ordered list
        return text[:m.end()] + "\\" + text[m.end():]
    return "\\" + text if re.match(r"[#+\-!]", text) else text


@functools.cache
def _env(html: bool):
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=html, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["md"] = md_escape
    return env


def render(doc: dict, figures: dict[str, bytes]) -> tuple[str, str]:
    """(report.md, report.html) of ``doc``; the html embeds ``figures`` (name -> PNG bytes), the md
    links ``<name>.png`` beside it."""
    inline = {k: base64.b64encode(v).decode() for k, v in figures.items()}
    keys = ("pre", "text", "table", "figure", "caption")
    doc = {**doc, "sections": [{**dict.fromkeys(keys), **s} for s in doc["sections"]]}
    return (_env(False).get_template("report.md.j2").render(doc=doc),
            _env(True).get_template("report.html.j2").render(doc=doc, inline=inline))


def _fmt(v, digits=2) -> str:
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def document(r: FlowReport, summary: list[str], figures: list[str]) -> dict:
    """The flow report ``r`` (``doping.flow_report.FlowReport``) as sections."""
    sections = [{"title": "Summary", "pre": summary, "text": [f"Silicon figures: {r.silicon_basis}."]}]
    sections.append({"title": "Per layer", "text": [
        "One vector through each layer: latency from idle and the steady-state interval when vectors stream back to "
        "back, in cycles; the busy cycles of each unit per vector (they overlap in time); energy per vector."],
        "table": {"header": ["layer", "shape", "latency cycles", "interval cycles", *PHASES, "energy nJ"],
                  "rows": [[l.name, f"{l.shape[0]}×{l.shape[1]}", _fmt(l.cycles), _fmt(l.interval_cycles),
                            *[_fmt(l.phase_cycles.get(u, 0)) for u in PHASES], _fmt(l.energy_pj / 1e3)]
                           for l in r.layers]}})
    sections.append({"title": "Per token", "text": _per_token_text(r)})
    sections.append({"title": "SRAM", "text": ["Bits per memory of the design (every bank)."],
                     "table": {"header": ["memory", "bits", "KiB"],
                               "rows": [[k, _fmt(v), _fmt(v / 8192)] for k, v in r.sram_bits.items()]}})
    captions = {"training": "Training: perplexity per epoch (train and validation).",
                "cycles": "Busy cycles per vector of each unit, per layer (the units overlap in time).",
                "energy": "Energy per vector of the first layer, by part.",
                "area": "Area by part: each memory (SRAM macros or flip-flops) and the logic."}
    for name in figures:
        sections.append({"title": name.capitalize(), "figure": name, "caption": captions.get(name, name)})
    sections.append({"title": "Design", "text": [f"Pack: {r.pack}"],
                     "table": {"header": ["field", "value"],
                               "rows": [[k, _fmt(v, 3)] for k, v in r.config.as_dict().items()]}})
    return {"title": "doping flow report", "sections": sections}


def _per_token_text(r: FlowReport) -> list[str]:
    p = r.per_vector
    out = [f"Per vector: {_fmt(p.cycles)} cycles through every layer one after another, from idle "
           f"({p.latency_us:.2f} µs at {p.clock_mhz:.0f} MHz); streaming, one vector every "
           f"{_fmt(p.interval_cycles)} cycles."]
    if (t := r.per_token) is not None:
        out.append(f"Per token, gate mat-vecs only: {_fmt(t.cycles_per_token)} cycles and "
                   f"{t.energy_per_token_pj / 1e3:.1f} nJ — each layer's latency from idle plus its switch "
                   f"(register words) and handover; {t.weights}.")
    if (s := r.lstm) is not None:
        out.append(f"Per token on the LSTM top: {_fmt(s.estimate.cycles_per_token)} cycles and "
                   f"{s.estimate.energy_per_token_pj / 1e3:.1f} nJ — the same mat-vecs plus the cell unit's work "
                   "(gate activations, cell and hidden state), the recurrence and the per-token overhead; this is "
                   "what a token costs when the whole LSTM runs on chip, and what the simulation measured "
                   f"({', '.join(map(str, s.sim.cycles_per_step_measured))} cycles a step).")
    return out
