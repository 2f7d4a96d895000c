"""`preimage report DIR`: a static, offline HTML view of an atlas campaign.

What a method shows (its sections, its tile, its layer figures) is what its ``ReportUse``
declares; this module only lays the pages out.

DIR/index.html shows, per layer, a grid of the units (each links to its page)
and the layer's histograms and scatter plot; DIR/units/LAYER_UNIT.html shows
everything computed for one unit. Pages link to the job artifacts by relative
paths, so the folder can be copied or zipped whole and opened without a
server. Every name shown is HTML-escaped and every path URL-quoted: layer
names come from user models and may hold any character.
"""

from __future__ import annotations

import html
import os
import time
from collections import defaultdict
from urllib.parse import quote

from ..errors import PreimageError
from ..io.files import atomic_write, safe_name
from ..methods import methods as registered_methods
from .catalog import Catalog
from .run import CATALOG

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.tile{display:block;width:120px;text-align:center;font-size:12px;color:#222;text-decoration:none}
.tile img{width:112px;height:112px;object-fit:contain;image-rendering:pixelated;
  border:1px solid #ddd;background:#f6f6f6}
.tile .none{display:inline-block;width:112px;height:112px;line-height:112px;background:#eee;
  color:#888}
.figs{display:flex;flex-wrap:wrap;align-items:flex-start;gap:8px;margin-top:10px}
.figs img{width:24%;min-width:220px}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.unit img{max-width:100%}.unit img.large{width:256px;image-rendering:pixelated}
#broken{display:none;background:#fdd;padding:6px;border:1px solid #c66}
.muted{color:#777;font-size:13px}
"""

# A self-check users see too: if the folder was moved without its jobs/, the
# banner says how many pictures are missing. The browser test reads the counts.
CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken-images', broken.length);
  if (broken.length) {
    var b = document.getElementById('broken');
    b.textContent = broken.length + ' of ' + imgs.length + ' images did not load: '
      + 'this folder is incomplete or was moved without jobs/.';
    b.style.display = 'block';
  }
});
</script>"""


def _e(text):
    return html.escape(str(text), quote=True)


def _src(path, depth=0):
    return _e(quote("../" * depth + path))


def _page(title, body, depth=0):
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        f'<div id="broken"></div>\n{body}\n'
        '<p class="muted">written by preimage report,'
        f" {_e(time.strftime('%Y-%m-%d %H:%M'))}</p>\n{CHECK}\n</body></html>\n"
    )


def unit_page_name(layer, unit):
    """The page of one unit, relative to the atlas folder: units/LAYER_UNIT.html."""
    return f"units/{safe_name(layer)}_{int(unit)}.html"


def _fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x, digits)}" for k, x in v.items())
    return str(v)


def collect(catalog):
    """{layer: {unit: {method: (metrics, artifacts, job id)}}}: per (unit, method), the done job
    the latest command planned wins, and among those the newest finished."""
    out = defaultdict(lambda: defaultdict(dict))
    for row in catalog.unit_results():  # in the order of precedence: the last one wins
        out[row["layer"]][row["unit"]][row["method"]] = (
            row["metrics"],
            row["artifacts"],
            row["job_id"],
        )
    return out


def write_report(folder):
    """Write index.html, one page per unit, and the per-layer figures: (index path, counts)."""
    folder = os.path.abspath(folder)
    path = os.path.join(folder, CATALOG)
    if not os.path.isfile(path):
        raise PreimageError(
            f"bad DIR {folder!r}: it holds no {CATALOG}; run `preimage atlas ... --out DIR` first"
        )
    catalog = Catalog(path)
    try:
        layers = collect(catalog)
        counts = catalog.counts()
        jobs = catalog.jobs()
        runs = catalog.runs()
    finally:
        catalog.close()
    model = jobs[0]["spec"]["model"] if jobs else "?"
    weights = jobs[0]["spec"]["weights"] if jobs else None
    specs = {j["id"]: j["spec"] for j in jobs}
    sections = []
    pages = 0
    for layer in sorted(layers, key=lambda name: _layer_order(jobs, name)):
        units = layers[layer]
        sections.append(_layer_section(folder, layer, units))
        for unit, methods in units.items():
            atomic_write(
                os.path.join(folder, unit_page_name(layer, unit)),
                _unit_page(model, layer, unit, methods, specs).encode(),
            )
            pages += 1
    failed = [j for j in jobs if j["status"] == "failed"]
    summary = (
        f"<h1>Atlas of {_e(model)}</h1>\n<p>weights: {_e(weights or 'default')}; jobs: "
        + ", ".join(f"{_e(k)} {v}" for k, v in sorted(counts.items()))
        + f"; {sum(len(u) for u in layers.values())} units on {len(layers)} layers; compute "
        + f"{sum(j['seconds'] or 0 for j in jobs) / 60:.1f} min in workers.</p>\n"
    )
    if runs:
        summary += (
            '<p class="muted">last command: <code>preimage'
            f" {_e(' '.join(runs[-1]['argv']))}</code></p>\n"
        )
    if failed:
        summary += (
            "<h2>Failed jobs</h2><table><tr><th>job</th><th>error</th></tr>"
            + "".join(
                f"<tr><td>{_e(j['id'])}</td><td><code>{_e(_last_line(j['error']))}</code></td></tr>"
                for j in failed
            )
            + "</table>\n"
        )
    index = os.path.join(folder, "index.html")
    atomic_write(index, _page(f"Atlas of {model}", summary + "\n".join(sections)).encode())
    return index, {"layers": len(layers), "unit_pages": pages, "jobs": counts}


def overview_html(folder, summary=None, limit=32):
    """A campaign at a glance, for a notebook: the jobs' counts and each layer's unit tiles
    (at most ``limit`` a layer), their pictures embedded so that the cell shows them anywhere."""
    import base64

    catalog = Catalog(os.path.join(folder, CATALOG))
    try:
        layers, counts = collect(catalog), catalog.counts()
    finally:
        catalog.close()
    head = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    if summary is not None:
        head += f"; this run ran {summary['ran']} in {summary['wall_seconds']:.0f} s"
    parts = [f"<p><b>atlas</b> {_e(folder)}: jobs {_e(head)}</p>"]
    for layer, units in layers.items():
        tiles = []
        for unit in sorted(units)[:limit]:
            thumb = _thumbnail(units[unit])
            if thumb and os.path.isfile(os.path.join(folder, thumb)):
                with open(os.path.join(folder, thumb), "rb") as f:
                    data = base64.b64encode(f.read()).decode("ascii")
                img = f'<img src="data:image/png;base64,{data}" width="96" alt="{unit}">'
            else:
                img = "no image"
            tiles.append(
                f'<span style="display:inline-block;text-align:center">{img}<br>{unit}</span>'
            )
        more = len(units) - min(len(units), limit)
        parts.append(
            f"<p>{_e(layer)}: {len(units)} units"
            + (f" ({more} not shown)" if more else "")
            + f"</p><div>{''.join(tiles)}</div>"
        )
    parts.append(f"<p>every picture and measure: <code>preimage report {_e(folder)}</code></p>")
    return '<div class="preimage">' + "".join(parts) + "</div>"


def _last_line(error):
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""


def _layer_order(jobs, layer):
    for i, j in enumerate(jobs):
        if j["layer"] == layer:
            return i
    return len(jobs)


def _reported():
    """The methods the report can show, in the order of their registration."""
    return [m for m in registered_methods() if m.report is not None]


def _thumbnail(units_methods):
    for m in _reported():
        role = m.report.thumbnail
        if role and m.name in units_methods and role in units_methods[m.name][1]:
            return units_methods[m.name][1][role]
    return None


def _layer_section(folder, layer, units):
    tiles = []
    for unit in sorted(units):
        found = units[unit]
        thumb = _thumbnail(found)
        img = (
            f'<img src="{_src(thumb)}" alt="{_e(layer)} unit {unit}">'
            if thumb
            else '<span class="none">no image</span>'
        )
        notes = [
            m.report.note(found[m.name][0])
            for m in _reported()
            if m.report.note and m.name in found
        ]
        tiles.append(
            f'<a class="tile" href="{_src(unit_page_name(layer, unit))}">{img}<br>{unit}<br><span'
            f' class="muted">{_e(", ".join(notes))}</span></a>'
        )
    figs = _layer_figures(folder, layer, units)
    fig_html = "".join(f'<img src="{_src(p)}" alt="{_e(alt)}">' for p, alt in figs)
    return (
        f'<h2 id="{_e(safe_name(layer))}">{_e(layer)}</h2>\n<div'
        f' class="grid">{"".join(tiles)}</div>\n<div class="figs">{fig_html}</div>'
    )


def _layer_figures(folder, layer, units):
    """Each method's figures of one layer (histograms, scatter plots), in report/."""
    prefix = f"report/{safe_name(layer)}"
    out = []
    for m in _reported():
        rows = [found[m.name][0] for found in units.values() if m.name in found]
        if rows and m.report.layer_figures:
            out += m.report.layer_figures(rows, folder, prefix, layer)
    return out


def _img(path, alt, large=False):
    size = ' class="large"' if large else ""
    return f'<img{size} src="{_src(path, 1)}" alt="{_e(alt)}">'


def _section(name, section, artifacts):
    parts = [f"<h2>{_e(section.title)}</h2>"]
    if section.rows:
        cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in section.rows)
        parts.append(f"<table>{cells}</table>")
    for role, alt, large in section.images:
        if role in artifacts:
            parts.append(_img(artifacts[role], f"{name} {alt}", large))
    if section.text:
        parts.append(f"<p>{_e(section.text)}</p>")
    return "".join(parts)


def made_by(spec, job_id):
    """Which settings made a unit's pictures: the job and its steps, size, λ, repeats, seed."""
    if spec is None:
        return f"made by job {job_id}"
    s = spec.get("settings", {})
    parts = [f"steps {s['steps']}" if "steps" in s else None, f"{spec.get('pixels')} px"]
    if s.get("lambdas"):
        parts.append("λ " + ",".join(f"{v:g}" for v in s["lambdas"]))
    for key in ("n", "repeats", "seed"):
        if key in s:
            parts.append(f"{key} {s[key]}")
    return f"made by job {job_id}: " + ", ".join(p for p in parts if p)


def _unit_page(model, layer, unit, found, specs):
    name = f"{layer}:{unit}"
    parts = [
        f'<p><a href="../index.html#{_e(safe_name(layer))}">← {_e(model)} atlas</a></p><h1>'
        f"{_e(name)}</h1>",
        '<div class="unit">',
    ]
    for m in _reported():
        if m.name in found:
            metrics, artifacts, job_id = found[m.name]
            parts += [_section(name, sec, artifacts) for sec in m.report.sections(metrics)]
            parts.append(f'<p class="muted">{_e(made_by(specs.get(job_id), job_id))}</p>')
    parts.append("</div>")
    return _page(f"{name} · {model}", "\n".join(parts), depth=1)
