"""The docs site in a real browser: build it offline, serve it over http on loopback, open every page in
headless Chromium: each loads without console errors and without touching the network, its pictures
(images, plotly graphs) and its maths (MathML) render, no TeX or notebook prompts are left in its text,
its sidebar shows the family groups, and its internal links lead to pages that exist. The search box
finds classes offline, and class methods have their own entries."""
import functools, re, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlparse

import nbformat
import pytest
from nbdev.config import get_config
from nbdev.doclinks import _nbpath2html

from lowcomm.docs import _notebooks, check_links
from test_docs import doc_of, named_methods

# console messages that say nothing about our pages
IGNORED = ('favicon.ico',)
RAW_TEX = re.compile(r'\$[^\s$][^$\n]*\$')                  # `$\theta$` left as text
PROMPT = re.compile(r'\b(In|Out)\s*\[\s*\d*\s*\]:')          # `In [3]:` / `Out[0]:`
# the page's text as a reader sees it, without code (where `$` and `[` are legitimate) and the sidebar
PROSE_JS = """() => { const b = document.body.cloneNode(true);
  b.querySelectorAll('pre, code, script, style, nav, .jp-InputArea-editor').forEach(e => e.remove());
  return b.textContent; }"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def site(docs_site, browser):
    "The docs site, served on 127.0.0.1: (folder, base URL)."
    out = docs_site
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f'http://127.0.0.1:{server.server_address[1]}/'
    server.shutdown(); server.server_close()


def _tex_pages() -> set[str]:
    "Pages whose notebooks write maths (`$...$` in a markdown cell, outside code)."
    cfg = get_config()
    res = set()
    for folder, prefix in [(cfg.path('nbs_path'), ''), (cfg.config_path/'papers'/'executed', 'papers/')]:
        for f in _notebooks(folder):
            nb = nbformat.read(Path(folder)/f, as_version=4)
            prose = [re.sub(r'```.*?```|`[^`]*`', '', c.source, flags=re.S) for c in nb.cells if c.cell_type == 'markdown']
            if any(re.search(r'\$[^$\n]+\$', p) for p in prose):
                res.add(prefix + _nbpath2html(f).as_posix())
    return res


def _family_groups(out) -> list[str]:
    "The sidebar's groups: one per notebook folder, then the papers."
    nbs = get_config().path('nbs_path')
    return sorted({f.parent.as_posix() for f in _notebooks(nbs)} - {'.'}) + ['papers'] * (out/'papers').is_dir()


def _offline_page(browser, base, outside):
    "A new page whose requests outside `base` are refused and recorded in `outside`."
    page = browser.new_page()
    page.set_default_timeout(60_000)
    def route(r):
        if r.request.url.startswith(base): return r.continue_()
        outside.append(r.request.url); r.abort()
    page.route('**/*', route)
    return page


def _check_page(page, href, tex_pages, groups) -> list[str]:
    "What is wrong with the open page `href`: maths, prompts, sidebar, pictures."
    problems = []
    prose = page.evaluate(PROSE_JS)
    if m := RAW_TEX.search(prose): problems.append(f'{href}: raw TeX {m[0][:60]!r}')
    if m := PROMPT.search(prose): problems.append(f'{href}: prompt {m[0]!r}')
    if page.locator('.jp-InputPrompt, .jp-OutputPrompt').count(): problems.append(f'{href}: prompt elements')
    if href in tex_pages:
        widths = page.evaluate("() => [...document.querySelectorAll('math')].map(m => m.getBoundingClientRect().width)")
        if not widths: problems.append(f'{href}: no MathML although its notebook has maths')
        if any(w == 0 for w in widths): problems.append(f'{href}: {widths.count(0)} math elements not drawn')
    if not page.locator('nav.lc-nav').count(): problems.append(f'{href}: no sidebar')
    got = page.evaluate("() => [...document.querySelectorAll('nav.lc-nav h4')].map(h => h.textContent)")
    if got != groups: problems.append(f'{href}: sidebar groups {got}, expected {groups}')
    # pictures: every output image decodes; every plotly graph is drawn
    bad_imgs = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea img, .jp-RenderedImage img')]"
                             ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
    problems += [f'{href}: image not rendered: {s}' for s in bad_imgs]
    undrawn = page.evaluate("() => [...document.querySelectorAll('.plotly-graph-div')].filter(d => !d.querySelector('.main-svg')).length")
    if undrawn: problems.append(f'{href}: {undrawn} plotly graph(s) not drawn')
    return problems


def test_every_page_in_chromium(site, browser):
    out, base = site
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob('*.html'))
    assert 'index.html' in pages and len(pages) > 5, pages
    assert check_links(out) == []
    tex_pages, groups = _tex_pages(), _family_groups(out)
    assert 'distributed/diloco.html' in tex_pages and {'base', 'distributed', 'tools', 'papers'} <= set(groups)
    problems, served, outside, errors = [], {urljoin(base, p) for p in pages}, [], []
    page = _offline_page(browser, base, outside)
    page.on('console', lambda m: m.type == 'error' and errors.append(m.text))
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('response', lambda r: r.status >= 400 and errors.append(f'HTTP {r.status} for {r.url}'))
    for href in pages:
        errors.clear(); outside.clear()
        resp = page.goto(urljoin(base, href), wait_until='load')
        if resp is None or resp.status != 200: problems.append(f'{href}: HTTP {resp and resp.status}'); continue
        page.wait_for_timeout(100)                          # late script errors
        problems += [f'{href}: {e}' for e in errors
                     if not any(i in e for i in IGNORED) and not e.startswith('Failed to load resource')]  # named by the HTTP line
        problems += [f'{href}: tried the network: {u[:100]}' for u in outside if not u.startswith('data:')]
        problems += _check_page(page, href, tex_pages, groups)
        # internal links, as the browser resolves them, point at pages of the site
        links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        for url in links:
            u = urlparse(url)
            if url.startswith(base) and u.path.endswith('.html') and f'{u.scheme}://{u.netloc}{u.path}' not in served:
                problems.append(f'{href}: broken link {url}')
    page.close()
    assert not problems, '\n'.join(problems)
    print(f'{len(pages)} pages checked, {len(tex_pages)} with maths')


def _search(page, words) -> list[tuple[str, str]]:
    "Type `words` into the sidebar's search box: the hits' (text, href)."
    page.fill('#lc-q', words)
    return page.evaluate("() => [...document.querySelectorAll('#lc-hits a')].map(a => [a.textContent, a.href])")


def test_search_offline(site, browser):
    out, base = site
    page = _offline_page(browser, base, outside := [])
    page.goto(urljoin(base, 'base/core.html'), wait_until='load')   # a page in a folder: hits resolve from the root
    hits = _search(page, 'DiLoCo')
    assert any(h.startswith(urljoin(base, 'distributed/diloco.html')) for _, h in hits), hits
    hits = _search(page, 'RunRecord')
    assert any(h.startswith(urljoin(base, 'base/core.html')) for _, h in hits), hits
    for href, name in map(doc_of, named_methods()):                  # a method: its own entry, at its heading
        assert [name, urljoin(base, f'{href}#{name}')] in _search(page, name.lower()), name
    assert _search(page, 'zqxj no such words') == [] and 'No match' in page.inner_text('#lc-hits')
    _search(page, 'RunRecord.log')
    page.press('#lc-q', 'Enter')                                      # Enter opens the first hit
    page.wait_for_url(urljoin(base, 'base/core.html#RunRecord.log'))
    assert outside == []
    page.close()


def test_methods_documented(site, browser, artifacts):
    "DiLoCo.fit and RunRecord.log have their own entries with signature and docstring; screenshots of them and the DiLoCo page."
    out, base = site
    page = _offline_page(browser, base, outside := [])
    page.set_viewport_size({'width': 1280, 'height': 900})
    for href, name in map(doc_of, named_methods()):
        page.goto(urljoin(base, href), wait_until='load')
        head = page.locator(f'[id="{name}"]')
        assert head.count() == 1 and head.is_visible(), name
        entry = head.locator('xpath=ancestor::div[contains(@class, "jp-OutputArea-output")]').inner_text()
        assert f'def {name.split(".")[1]}(' in entry and len(entry) > len(name) + 20, entry
        page.locator(f'[id="{name}"]').scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts/f'docs_{name}.png'))
    page.goto(urljoin(base, 'distributed/diloco.html'), wait_until='load')
    page.screenshot(path=str(artifacts/'docs_diloco.png'))
    assert outside == []
    page.close()
