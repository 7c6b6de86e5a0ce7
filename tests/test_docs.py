"Build the real docs site offline (all of nbs/ and the executed papers) and check its pages without a browser."
import importlib, inspect, json, posixpath, re

import pytest
from nbdev.config import get_config
from nbdev.doclinks import _nbpath2html

from lowcomm._modidx import d as modidx
from lowcomm.docs import _notebooks, check_links


@pytest.fixture(scope='module')
def site(docs_site): return docs_site


def test_pages_and_links(site):
    nbs = get_config().path('nbs_path')
    core = (site/'base'/'core.html').read_text(encoding='utf-8')
    assert 'RunRecord' in core
    for f in _notebooks(nbs):  # the nav links every page, relative to the page
        href = _nbpath2html(f).as_posix()
        assert (site/href).exists() and f'href="{posixpath.relpath(href, "base")}"' in core, href
    assert check_links(site) == []
    for page in site.rglob('*.html'):  # nothing fetched to read it
        assert not re.search(r'<(link|script)[^>]+(href|src)="(https?:)?//', page.read_text(encoding='utf-8')), page


def test_sidebar_grouped_by_family(site):
    "One group per notebook folder, in folder order, each family's pages in numbered order (overview first), then the papers."
    nbs, papers = get_config().path('nbs_path'), get_config().config_path/'papers'/'executed'
    home = (site/'index.html').read_text(encoding='utf-8')
    folders = sorted({f.parent.as_posix() for f in _notebooks(nbs)} - {'.'})
    assert re.findall(r'<h4>([^<]*)</h4>', home) == folders + ['papers'] * bool(_notebooks(papers))
    for folder in folders:
        files = sorted((nbs/folder).glob('*.ipynb'), key=lambda p: (p.stem != '00_overview', p.name))
        hrefs = [_nbpath2html(p.relative_to(nbs)).as_posix() for p in files if not p.name.startswith('_')]
        group = home.split(f'<h4>{folder}</h4>')[1].split('</ul>')[0]
        assert re.findall(r'href="([^"]+)"', group) == hrefs, folder


def test_maths_is_mathml(site):
    "Pages whose notebooks have TeX show MathML elements and no `$...$` left in their text."
    diloco = (site/'distributed'/'diloco.html').read_text(encoding='utf-8')
    assert '<math' in diloco and '<msup><mi>θ</mi>' in diloco
    for page in site.rglob('*.html'):
        text = re.sub(r'<(script|style|pre|code)\b.*?</\1>', '', page.read_text(encoding='utf-8'), flags=re.S)
        assert not re.search(r'\$[^\s$<][^$<\n]*\$', text), page


def named_methods():
    "The methods the docs must show by name: `DiLoCo.fit` and `RunRecord.log`."
    from lowcomm.core import RunRecord
    from lowcomm.distributed.diloco import DiLoCo
    return [DiLoCo.fit, RunRecord.log]


def doc_of(f) -> tuple[str, str]:
    "The page documenting function `f` and its entry's anchor: the page of the class that defines it (`DiLoCo.fit` may be inherited)."
    return modidx['syms'][f.__module__][f'{f.__module__}.{f.__qualname__}'][0].split('#')[0], f.__qualname__


def _documented_classes():
    "(page, class) for every public class nbdev indexes: `lowcomm._modidx` maps each symbol to its page."
    for mod, syms in modidx['syms'].items():
        for sym, (link, _) in syms.items():
            name = sym[len(mod) + 1:]
            if '.' in name or name.startswith('_'): continue
            obj = getattr(importlib.import_module(mod), name, None)
            if inspect.isclass(obj): yield link.split('#')[0], obj


def _methods(cls) -> list[str]:
    "The public methods `cls` defines (in its body or by `@patch`), not attributes that hold a function."
    funcs = {m: inspect.unwrap(getattr(v, '__func__', v)) for m, v in vars(cls).items() if not m.startswith('_')}
    return [m for m, f in funcs.items() if inspect.isfunction(f) and f.__qualname__ == f'{cls.__name__}.{m}']


def test_every_public_method_documented(site):
    "Each class shown on the site has a `show_doc` entry for every public method it defines."
    for href, name in map(doc_of, named_methods()):
        assert f'id="{name}"' in (site/href).read_text(encoding='utf-8'), (href, name)
    missing = []
    for href, cls in _documented_classes():
        page = (site/href).read_text(encoding='utf-8') if (site/href).exists() else ''
        if f'id="{cls.__name__}"' not in page: continue   # a page without API docs (it warned at build time)
        missing += [f'{href}: {cls.__name__}.{m}' for m in _methods(cls) if f'id="{cls.__name__}.{m}"' not in page]
    assert not missing, missing


def test_search_index(site):
    "search.js indexes every page's sections, with links to their headings."
    index = json.loads((site/'search.js').read_text(encoding='utf-8').removeprefix('window.LC_SEARCH = ').rstrip(';\n'))
    assert {e['u'].split('#')[0] for e in index} == {p.relative_to(site).as_posix() for p in site.rglob('*.html')}
    for href, name in map(doc_of, named_methods()):
        assert {'h': name, 'u': f'{href}#{name}'}.items() <= next(e for e in index if e['h'] == name).items(), name
    assert (site/'lc.js').exists()
