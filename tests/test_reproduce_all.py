"`lowcomm reproduce all`: every paper notebook at smoke scale, on a copy of papers/, then RESULTS.md."
import re, shutil
from pathlib import Path

from _cli import lowcomm

REPO_PAPERS = Path(__file__).resolve().parent.parent/'papers'


def test_reproduce_all_smoke(tmp_path):
    papers = tmp_path/'papers'; papers.mkdir()
    for nb in REPO_PAPERS.glob('*.ipynb'): shutil.copy(nb, papers)
    names = sorted(p.stem for p in papers.glob('*.ipynb'))
    assert {'baseline', 'diloco'} <= set(names)
    cwd = tmp_path/'cwd'; cwd.mkdir()
    r = lowcomm('reproduce', 'all', '--scale', 'smoke', '--papers', papers, cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    for i, name in enumerate(names, 1): assert re.search(rf'\[{i}/{len(names)}\] {name}: ok in [\d.]+ s', r.stdout), r.stdout
    md = (papers/'RESULTS.md').read_text()
    assert '# Reproductions at scale `smoke`' in md and 'FAILED' not in md and 'No results' not in md, md
    assert re.search(r'\| perplexity \| 16\.23 \| [\d.]+ \|', md), md                   # baseline: paper vs ours
    assert re.search(r'\| perplexity: DiLoCo \| 15\.02 \| [\d.]+ \|', md), md           # DiLoCo Table 2
    assert re.search(r'\| communication saved .* \| 500 \| [\d.]+ \|', md), md
    assert '### Ablations' in md and '| workers | 4 | 15.23 | — |' in md and '### Claims' in md, md
    for name in names:
        figures = re.findall(rf'\]\((figures/{name}-smoke-\d+\.png)\)', md)
        assert figures, (name, md)
        assert all((papers/f).read_bytes()[:4] == b'\x89PNG' for f in figures)
    assert not list(cwd.iterdir())  # nothing written to the working directory
