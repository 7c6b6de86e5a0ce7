"Build the real docs site offline (the `#| slow` check of nbs/tools/40_docs.ipynb) and check it."
import re
from pathlib import Path

from nbdev.config import get_config
from nbdev.doclinks import nbglob, _nbpath2html

from lowcomm.docs import build_docs, check_links


def test_build_docs(tmp_path):
    nbs = get_config().path('nbs_path')
    site = build_docs(tmp_path/'site', nbs=nbs, quarto=False)
    core = (site/'core.html').read_text(encoding='utf-8')
    assert 'RunRecord' in core
    for nb in nbglob(nbs, func=Path):  # the nav links every page
        href = _nbpath2html(Path(nb).relative_to(nbs)).as_posix()
        assert (site/href).exists() and f'href="{href}"' in core, href
    assert check_links(site) == []
    assert not re.search(r'<(link|script)[^>]+(href|src)="https?:', core)  # nothing fetched to read it
