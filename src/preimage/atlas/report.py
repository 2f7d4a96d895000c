"""`preimage report DIR`: a static, offline HTML view of an atlas campaign.

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

from ..io import figures
from .catalog import Catalog
from .run import CATALOG
from ..errors import PreimageError
from ..io.images import atomic_write
from ..io.store import safe_name

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
.grid{display:flex;flex-wrap:wrap;gap:8px}
.tile{display:block;width:120px;text-align:center;font-size:12px;color:#222;text-decoration:none}
.tile img{width:112px;height:112px;object-fit:contain;image-rendering:pixelated;border:1px solid #ddd;background:#f6f6f6}
.tile .none{display:inline-block;width:112px;height:112px;line-height:112px;background:#eee;color:#888}
.figs{display:flex;flex-wrap:wrap;align-items:flex-start;gap:8px;margin-top:10px}.figs img{width:24%;min-width:220px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
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
    b.textContent = broken.length + ' of ' + imgs.length + ' images did not load: this folder is incomplete or was moved without jobs/.';
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
    return f"units/{safe_name(layer)}_{int(unit)}.html"


def _fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def collect(catalog):
    """{layer: {unit: {method: (metrics, artifacts)}}}, the newest done job winning per (unit, method)."""
    out = defaultdict(lambda: defaultdict(dict))
    for row in catalog.unit_results():
        out[row["layer"]][row["unit"]][row["method"]] = (row["metrics"], row["artifacts"])
    return out


def write_report(folder):
    """Write index.html, one page per unit, and the per-layer figures; returns (index path, counts)."""
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
    sections = []
    pages = 0
    for layer in sorted(layers, key=lambda name: _layer_order(jobs, name)):
        units = layers[layer]
        sections.append(_layer_section(folder, layer, units))
        for unit, methods in units.items():
            atomic_write(
                os.path.join(folder, unit_page_name(layer, unit)),
                _unit_page(model, layer, unit, methods).encode(),
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
                f"<tr><td>{_e(j['id'])}</td><td><code>{_e((j['error'] or '').strip().splitlines()[-1] if j['error'] else '')}</code></td></tr>"
                for j in failed
            )
            + "</table>\n"
        )
    index = os.path.join(folder, "index.html")
    atomic_write(index, _page(f"Atlas of {model}", summary + "\n".join(sections)).encode())
    return index, {"layers": len(layers), "unit_pages": pages, "jobs": counts}


def _layer_order(jobs, layer):
    for i, j in enumerate(jobs):
        if j["layer"] == layer:
            return i
    return len(jobs)


def _thumbnail(methods):
    for method, role in (("visualize", "image"), ("diverse", "chosen"), ("reliability", "repeats")):
        if method in methods:
            return methods[method][1][role]
    return None


def _layer_section(folder, layer, units):
    tiles = []
    for unit in sorted(units):
        methods = units[unit]
        thumb = _thumbnail(methods)
        img = (
            f'<img src="{_src(thumb)}" alt="{_e(layer)} unit {unit}">'
            if thumb
            else '<span class="none">no image</span>'
        )
        notes = []
        if "invariance" in methods:
            notes.append(f"SII {_fmt(methods['invariance'][0].get('shift_invariance_index'), 2)}")
        if "diverse" in methods:
            notes.append(f"gain {_fmt(methods['diverse'][0].get('diversity_gain'), 2)}")
        tiles.append(
            '<a class="tile"'
            f' href="{_src(unit_page_name(layer, unit))}">{img}<br>{unit}<br><span'
            f' class="muted">{_e(", ".join(notes))}</span></a>'
        )
    figs = _layer_figures(folder, layer, units)
    fig_html = "".join(f'<img src="{_src(p)}" alt="{_e(alt)}">' for p, alt in figs)
    return (
        f'<h2 id="{_e(safe_name(layer))}">{_e(layer)}</h2>\n<div'
        f' class="grid">{"".join(tiles)}</div>\n<div class="figs">{fig_html}</div>'
    )


def _layer_figures(folder, layer, units):
    """Histograms of both invariance indices and the diversity gain, and the SII-LCI scatter, for one layer."""
    base = f"report/{safe_name(layer)}"
    out = []
    inv = [m["invariance"][0] for m in units.values() if "invariance" in m]
    if inv:
        pairs = [(u.get("shift_invariance_index"), u.get("linear_combination_index")) for u in inv]
        paths = figures.invariance_plots({"units": pairs}, folder, prefix=base + "_", title=layer)
        alts = ("shift invariance histogram", "linear combination histogram", "index scatter")
        out += [(os.path.relpath(p, folder), alt) for p, alt in zip(paths, alts)]
    gains = [m["diverse"][0].get("diversity_gain") for m in units.values() if "diverse" in m]
    if gains:
        figures.histograms(
            {"units": gains},
            os.path.join(folder, base + "_diversity_gain.png"),
            xlabel="diversity gain: min distance at the chosen λ / at λ = 0",
            title=layer,
        )
        out.append((base + "_diversity_gain.png", "diversity gain histogram"))
    return out


def _img(path, alt, large=False):
    size = ' class="large"' if large else ""
    return f'<img{size} src="{_src(path, 1)}" alt="{_e(alt)}">'


def _unit_page(model, layer, unit, methods):
    name = f"{layer}:{unit}"
    parts = [
        (
            f'<p><a href="../index.html#{_e(safe_name(layer))}">← {_e(model)}'
            f" atlas</a></p><h1>{_e(name)}</h1>"
        ),
        '<div class="unit">',
    ]
    if "visualize" in methods:
        m, a = methods["visualize"]
        parts.append(
            f"<h2>Visualization</h2>{_img(a['image'], name + ' visualization', large=True)}<p>activation"
            f" {_fmt(m.get('activation'))}</p>"
        )
    if "diverse" in methods:
        m, a = methods["diverse"]
        parts.append(
            "<h2>Diverse images at the chosen λ ="
            f" {_fmt(m.get('chosen_lambda'))}</h2>{_img(a['chosen'], name + ' diverse images')}"
            f"<p>diversity gain {_fmt(m.get('diversity_gain'))} (min distance at the chosen λ / at"
            f" λ = 0); threshold {_fmt(m.get('threshold'))}; "
            f"distances in {_e(m.get('distance_layer'))}; image {_e(m.get('size'))} px</p>"
            "<h2>λ rows and the"
            f" trade-off</h2>{_img(a['lambdas'], name + ' lambda rows')}{_img(a['tradeoff'], name + ' trade-off curve')}"
        )
    if "invariance" in methods:
        m, a = methods["invariance"]
        parts.append(
            "<h2>Invariance indices</h2><table>"
            "<tr><th>shift invariance"
            f" index</th><td>{_fmt(m.get('shift_invariance_index'))}</td></tr>"
            "<tr><th>linear combination"
            f" index</th><td>{_fmt(m.get('linear_combination_index'))}</td></tr>"
            "<tr><th>template / crop / pair"
            f" activation</th><td>{_fmt(m.get('template_activation'))} /"
            f" {_fmt(m.get('crop_activation'))} / {_fmt(m.get('pair_activation'))}</td></tr>"
            f"</table>{_img(a['panel'], name + ' invariance panel')}"
        )
    if "reliability" in methods:
        m, a = methods["reliability"]
        sp = m.get("spearman", {})
        top = m.get("top1_most_common", {})
        parts.append(
            "<h2>Reliability</h2><table>"
            f"<tr><th>repeats</th><td>{_fmt(m.get('repeats'))}</td></tr>"
            f"<tr><th>most common top-1</th><td>{_e(top.get('name'))} ({_fmt(top.get('count'))} of"
            f" {_fmt(m.get('repeats'))})</td></tr>"
            f"<tr><th>top-5 labels shared</th><td>{_fmt(m.get('top5_shared'))}</td></tr>"
            f"<tr><th>Spearman ρ of logits, mean (min)</th><td>{_fmt(sp.get('mean_rho'))}"
            f" ({_fmt(sp.get('min_rho'))})</td></tr>"
            f"<tr><th>pixel / feature correlation</th><td>{_fmt(m.get('pixel_correlation'))} /"
            f" {_fmt(m.get('feature_correlation'))}</td></tr>"
            f"</table>{_img(a['repeats'], name + ' repeats')}{_img(a['logits'], name + ' logits')}"
        )
    parts.append("</div>")
    return _page(f"{name} · {model}", "\n".join(parts), depth=1)
