"`lowcomm reproduce`: run a paper notebook with papermill on a copy of papers/, never the repo's own."
import json, math, re, shutil
from pathlib import Path

import nbformat
import pytest

from _cli import lowcomm

REPO_PAPERS = Path(__file__).resolve().parent.parent/'papers'


@pytest.fixture
def papers(tmp_path) -> Path:
    "A copy of the repo's paper notebooks (only the .ipynb files) in a temp folder."
    dest = tmp_path/'papers'; dest.mkdir()
    for nb in REPO_PAPERS.glob('*.ipynb'): shutil.copy(nb, dest)
    assert (dest/'baseline.ipynb').exists()
    return dest


HEADLINES = {'baseline': {'eval_loss', 'ppl', 'params'},
             'diloco': {'ppl_baseline', 'ppl_dp', 'ppl_diloco', 'bytes_dp', 'bytes_diloco', 'workers', 'H'}}


@pytest.fixture(scope='module')
def reproduced(tmp_path_factory):
    "`lowcomm reproduce all --scale smoke` once, on a copy of the papers: (papers folder, completed process, cwd)."
    root = tmp_path_factory.mktemp('all')
    papers, cwd = root/'papers', root/'cwd'
    papers.mkdir(); cwd.mkdir()
    for nb in REPO_PAPERS.glob('*.ipynb'): shutil.copy(nb, papers)
    return papers, lowcomm('reproduce', 'all', '--scale', 'smoke', '--papers', papers, cwd=cwd), cwd


@pytest.mark.parametrize('name', sorted(HEADLINES))
def test_reproduce_smoke(reproduced, name):
    papers, r, cwd = reproduced
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads((papers/'results'/f'{name}-smoke.json').read_text())
    assert HEADLINES[name] | {'measured_on'} <= set(res)
    assert all(math.isfinite(v) and v > 1 for key, v in res.items() if key.startswith('ppl'))
    assert {'lowcomm', 'torch', 'python', 'device'} <= set(res['measured_on'])
    executed = nbformat.read(papers/'executed'/f'{name}-smoke.ipynb', as_version=4)
    code = [c for c in executed.cells if c.cell_type == 'code']
    assert any(c.outputs for c in code), "the executed notebook has no outputs"
    assert not any(o.get('output_type') == 'error' for c in code for o in c.outputs)
    assert any('injected-parameters' in c.metadata.get('tags', []) for c in code)  # papermill passed scale=smoke
    assert not list(cwd.iterdir())  # nothing written to the working directory
    if name == 'baseline':
        assert math.isclose(res['ppl'], math.exp(res['eval_loss']), rel_tol=1e-6)
    else:
        assert res['bytes_dp'] == res['H'] * res['bytes_diloco']   # fp32 both ways: H times fewer messages


def test_reproduce_all_writes_results_md(reproduced):
    papers, r, cwd = reproduced
    names = sorted(p.stem for p in REPO_PAPERS.glob("*.ipynb"))
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


def _paper(path: Path, *cells: str, tags=('parameters',)):
    "Write a notebook: the first cell tagged `parameters`, the rest plain code cells."
    nb = nbformat.v4.new_notebook(metadata={
        'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
        'language_info': {'name': 'python'}})
    nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={'tags': list(tags)}),
                *(nbformat.v4.new_code_cell(c) for c in cells[1:])]
    nbformat.write(nb, path)


def test_failing_paper_leaves_no_results(tmp_path, papers):
    _paper(papers/'broken.ipynb',
           "scale = 'smoke'\nresults_path = None",
           "from lowcomm.repro import save_results\nsave_results({'eval_loss': 1.0}, results_path)",  # written, then...
           "raise RuntimeError('deliberate failure in the broken paper')")
    cwd = tmp_path/'cwd'; cwd.mkdir()
    r = lowcomm('reproduce', 'broken', '--scale', 'smoke', '--papers', papers, cwd=cwd)
    assert r.returncode != 0
    assert 'deliberate failure in the broken paper' in r.stdout + r.stderr, r.stderr[-4000:]  # the cell did run
    results = papers/'results'
    assert not (results/'broken-smoke.json').exists()
    assert not (results.exists() and list(results.iterdir())), list(results.iterdir())  # no partial files either


def test_unknown_paper(tmp_path, papers):
    r = lowcomm('reproduce', 'no_such_paper', '--papers', papers, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert 'Traceback' not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "'no_such_paper'" in r.stderr
    for name in sorted(p.stem for p in papers.glob('*.ipynb')): assert name in r.stderr, (name, r.stderr)
    assert not (papers/'results').exists() and not (papers/'executed').exists()
