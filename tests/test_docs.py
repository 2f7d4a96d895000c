"""The documentation builds offline with no warning, documents every public name, and its pages
load in a browser with every image and script."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import zlib

import pytest
from browser import chromium, dump_dom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src", "preimage")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]  # --strict: a broken link or missing page fails
    return out


def _public_modules():
    """The package's modules that declare ``__all__``, by name."""
    found = []
    for root, _, names in os.walk(SRC):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            tree = ast.parse(open(path).read())
            if any(
                isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "__all__" for t in node.targets)
                for node in tree.body
            ):
                rel = os.path.relpath(path, os.path.dirname(SRC))[: -len(".py")]
                found.append(rel.replace(os.sep, ".").removesuffix(".__init__"))
    return sorted(found)


def _inventory(site):
    with open(os.path.join(site, "objects.inv"), "rb") as f:
        data = f.read()
    header_end = 0
    for _ in range(4):  # four header lines, then the zlib-compressed body
        header_end = data.index(b"\n", header_end) + 1
    body = zlib.decompress(data[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def test_every_public_name_is_in_the_api_reference(site):
    documented = _inventory(site)
    modules = _public_modules()
    assert "preimage" in modules and "preimage.atlas" in modules
    missing = []
    for name in modules:
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.ismodule(obj):
                continue  # a package named in __all__: its own names are checked on their own
            where = {f"{name}.{attr}"}
            if inspect.isclass(obj) or inspect.isfunction(obj):
                where.add(f"{obj.__module__}.{obj.__qualname__}")
            # a constant is documented in the submodule that defines it
            defined_below = any(
                d.startswith(name + ".") and d.endswith("." + attr) for d in documented
            )
            if not where & documented and not defined_below:
                missing.append(f"{name}.{attr}")
    assert not missing, f"not in docs/api.md: {missing}"


def test_the_api_reference_shows_the_docstrings(site):
    import preimage

    text = open(os.path.join(site, "api.html")).read()
    first = preimage.render.__doc__.split(";")[0].split("``")[0].strip()[:40]
    assert first and first in text
    assert "Dot product of the activations with a vector" in text  # O.direction's


def test_preimage_methods_is_the_package_whatever_was_imported_first():
    import preimage

    preimage.run  # noqa: B018  (imports preimage.methods)
    assert inspect.ismodule(preimage.methods) and callable(preimage.methods.methods)


def test_the_site_needs_no_network(site):
    external = re.compile(r"""(?:src|href)=["'](?:https?:)?//""")
    offenders = {}
    for root, _, names in os.walk(site):
        for name in names:
            if name.endswith(".html"):
                text = open(os.path.join(root, name)).read()
                # links a reader clicks may point anywhere; what the page loads may not
                loads = re.findall(r"<(?:script|img|link)\b[^>]*>", text)
                bad = [tag for tag in loads if external.search(tag)]
                if bad:
                    offenders[name] = bad[:3]
    assert not offenders


# records, before any resource loads, what failed; the counts land on <body> when the page is done
CHECK = """<script>
window.__failed = [];
window.addEventListener('error', function (e) {
  var t = e.target; if (t && (t.src || t.href)) window.__failed.push(t.src || t.href);
}, true);
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', broken.length);
  document.body.setAttribute('data-failed', window.__failed.join(' ') || 'none');
  document.body.setAttribute('data-theme-ran', typeof window.document$ === 'undefined' ? 0 : 1);
});
</script>"""


@pytest.mark.parametrize("page", ["index.html", "methods/diverse.html", "api.html"])
def test_pages_load_every_image_and_script_in_chromium(site, page, tmp_path):
    browser = chromium()
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    path = copy / page
    text = path.read_text()
    path.write_text(text.replace("<head>", "<head>" + CHECK, 1))
    dom = dump_dom(browser, path)
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[-2000:]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(0)))
    assert attrs.get("failed") == "none", attrs
    assert attrs.get("broken") == "0" and attrs.get("theme-ran") == "1", attrs
    if page != "api.html":
        assert int(attrs["images"]) >= 1, attrs


def _python_blocks(path):
    text = open(os.path.join(ROOT, path)).read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("path", ["README.md"])
def test_the_front_pages_python_runs(path, tmp_path, monkeypatch):
    """The tour a newcomer copies first runs as written, with fewer steps on smaller images."""
    blocks = _python_blocks(path)
    assert blocks, f"{path} has no Python tour"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        small = re.sub(r"steps=\d+", "steps=2", code).replace(", 128", ", 32")
        namespace = {}
        exec(compile(small, path, "exec"), namespace)
        if "result" in namespace:
            html = namespace["result"]._repr_html_()
            assert "<img" in html
    assert os.listdir(tmp_path / "runs" / "div"), "the tour's result.save wrote nothing"


# Blocks that are not meant to run as written: a formula, and a module of the reader's own.
NOT_RUN = {
    ("docs/methods/visualize.md", 0): "the objective as a formula",
    ("docs/models.md", 2): "wraps the reader's own my_module",
    ("docs/models.md", 4): "registers the reader's own build_my_module",
    ("docs/trained-vs-random.md", 0): "reads the campaigns of a checkout (test_compare runs it)",
}
SMALL = {"steps": 2, "size": 64, "repeats": 2}


def _pages_with_python():
    pages = []
    for root, _, names in os.walk(os.path.join(ROOT, "docs")):
        for name in sorted(names):
            path = os.path.relpath(os.path.join(root, name), ROOT)
            if name.endswith(".md") and _python_blocks(path):
                pages.append(path)
    return sorted(pages)


@pytest.mark.parametrize("path", _pages_with_python())
def test_every_pages_python_runs(path, tmp_path, monkeypatch):
    """Each page's Python runs as the page has it (its blocks in order, one namespace), with
    every method run made small: 2 steps, 64 px, 2 repeats; the prior's baselines on fewer
    patches."""
    import dataclasses

    import preimage
    import preimage.priors

    run = preimage.run

    def small_run(name, model, **settings):
        fields = {f.name for f in dataclasses.fields(preimage.get_method(name).settings)}
        # Table 4's HOG needs its images' size; diverse's default is the receptive field,
        # smaller than 64 px already (a larger image makes the prior's batch huge)
        keep_size = (
            isinstance(model, list) or name == "diverse" or getattr(model, "fixed_input_size", 0)
        )  # a ViT runs at its input size only
        for key, value in SMALL.items():
            if key in fields and not (key == "size" and keep_size):
                settings[key] = value
        return run(name, model, **settings, progress=False)

    evaluate = preimage.priors.evaluate
    monkeypatch.setattr(preimage, "run", small_run)
    monkeypatch.setattr(
        preimage.priors,
        "evaluate",
        lambda prior, **kw: evaluate(prior, train_count=500, test_count=100, components=2),
    )
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, code in enumerate(_python_blocks(path)):
        if (path, i) in NOT_RUN:
            continue
        code = re.sub(r"steps=\d+", "steps=2", code)
        exec(compile(code, f"{path} block {i}", "exec"), namespace)
