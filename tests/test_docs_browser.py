"""The docs site in a real browser: build it offline, serve it over http on loopback, open every page in
headless Chromium: each loads without console errors, its pictures (images, plotly graphs) render, and its
internal links lead to pages that exist."""
import functools, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin, urlparse

import pytest
from nbdev.config import get_config

from lowcomm.docs import build_docs, check_links

# console messages that say nothing about our pages
IGNORED = ('favicon.ico',)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope='module')
def site(tmp_path_factory, browser):
    "The docs site, built into a temp folder and served on 127.0.0.1: (folder, base URL)."
    out = build_docs(tmp_path_factory.mktemp('docs')/'site', nbs=get_config().path('nbs_path'), quarto=False)
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f'http://127.0.0.1:{server.server_address[1]}/'
    server.shutdown(); server.server_close()


def test_every_page_in_chromium(site, browser):
    out, base = site
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob('*.html'))
    assert 'index.html' in pages and len(pages) > 5, pages
    assert check_links(out) == []
    problems, served = [], {urljoin(base, p) for p in pages}
    page = browser.new_page()
    page.set_default_timeout(60_000)
    errors = []
    page.on('console', lambda m: m.type == 'error' and errors.append(m.text))
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.on('response', lambda r: r.status >= 400 and errors.append(f'HTTP {r.status} for {r.url}'))
    for href in pages:
        errors.clear()
        resp = page.goto(urljoin(base, href), wait_until='load')
        if resp is None or resp.status != 200: problems.append(f'{href}: HTTP {resp and resp.status}'); continue
        page.wait_for_timeout(100)                          # late script errors
        problems += [f'{href}: {e}' for e in errors
                     if not any(i in e for i in IGNORED) and not e.startswith('Failed to load resource')]  # named by the HTTP line
        if not page.locator('nav.lc-nav').count(): problems.append(f'{href}: no sidebar')
        # pictures: every output image decodes; every plotly graph is drawn
        bad_imgs = page.evaluate("() => [...document.querySelectorAll('.jp-OutputArea img, .jp-RenderedImage img')]"
                                 ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))")
        problems += [f'{href}: image not rendered: {s}' for s in bad_imgs]
        undrawn = page.evaluate("() => [...document.querySelectorAll('.plotly-graph-div')].filter(d => !d.querySelector('.main-svg')).length")
        if undrawn: problems.append(f'{href}: {undrawn} plotly graph(s) not drawn')
        # internal links, as the browser resolves them, point at pages of the site
        links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        for url in links:
            u = urlparse(url)
            if url.startswith(base) and u.path.endswith('.html') and f'{u.scheme}://{u.netloc}{u.path}' not in served:
                problems.append(f'{href}: broken link {url}')
    page.close()
    assert not problems, '\n'.join(problems)
    # pages from notebooks with pictures show them (checked above); say how many there were
    print(f'{len(pages)} pages checked')
