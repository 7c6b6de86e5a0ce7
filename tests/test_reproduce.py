"`lowcomm reproduce`: run the paper notebooks with papermill on a copy of papers/ (with its committed cpu results), never the repo's own."
import hashlib, json, math, os, re, shutil, subprocess, sys
from pathlib import Path

import nbformat
import pytest

from _cli import lowcomm

REPO_PAPERS = Path(__file__).resolve().parent.parent/'papers'
CPU_FILES = {'RESULTS.md', 'RESULTS-cpu.md', 'results/baseline-cpu.json', 'results/diloco-cpu.json', 'executed/baseline-cpu.ipynb',
             'executed/diloco-cpu.ipynb', 'figures/baseline-cpu-1.png', 'figures/diloco-cpu-1.png', 'figures/diloco-cpu-2.png'}
NO_GPU = {**os.environ, 'CUDA_VISIBLE_DEVICES': '', 'HF_HUB_OFFLINE': '1'}   # the gpu scale fails its preflight on any machine
GPU_MISSING = ("lowcomm reproduce: scale gpu needs a CUDA GPU (none visible) and C4: "
               "pass --corpus PATH to a local C4-format file or run where the hub is reachable")


@pytest.fixture
def papers(tmp_path) -> Path:
    "A copy of the repo's paper notebooks (only the .ipynb files) in a temp folder."
    dest = tmp_path/'papers'; dest.mkdir()
    for nb in REPO_PAPERS.glob('*.ipynb'): shutil.copy(nb, dest)
    assert (dest/'baseline.ipynb').exists()
    return dest


def _committed_copy(dest: Path) -> Path:
    "The repo's papers/ as committed (notebooks, pages, cpu results), without run records or smoke outputs."
    shutil.copytree(REPO_PAPERS, dest, ignore=lambda d, names: [n for n in names if n == 'runs' or '-smoke' in n or n.startswith('.')])
    return dest


def _snapshot(papers: Path) -> dict[str, str]:
    "Every file under `papers` (but run records): relative path -> sha256."
    return {p.relative_to(papers).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(papers.rglob('*')) if p.is_file() and 'runs' not in p.relative_to(papers).parts}


def _corpus(path: Path) -> Path:
    "A small JSON-lines corpus of 40 made-up documents."
    path.parent.mkdir()
    path.write_text(''.join(json.dumps({'text': ''.join(f'note {d}.{i}: {d * i % 17} apples, {(d + i) % 5} pears\n' for i in range(60))}) + '\n'
                            for d in range(40)))
    return path


@pytest.fixture(scope='module')
def reproduced(tmp_path_factory):
    "On a committed copy of papers/: `reproduce all --scale smoke`, a failing `--scale gpu`, a smoke run on another corpus; outputs and snapshots."
    root = tmp_path_factory.mktemp('all')
    papers, cwd = _committed_copy(root/'papers'), root/'cwd'
    cwd.mkdir()
    s = {'committed': _snapshot(papers)}
    r = {'smoke': lowcomm('reproduce', 'all', '--scale', 'smoke', '--papers', papers, cwd=cwd)}
    s['smoke'] = _snapshot(papers)
    r['gpu'] = lowcomm('reproduce', 'all', '--scale', 'gpu', '--papers', papers, cwd=cwd, env=NO_GPU, timeout=120)
    r['gpu_one'] = lowcomm('reproduce', 'diloco', '--scale', 'gpu', '--papers', papers, cwd=cwd, env=NO_GPU, timeout=120)
    s['gpu'] = _snapshot(papers)
    corpus = _corpus(root/'data'/'mine.jsonl')
    r['corpus'] = lowcomm('reproduce', 'baseline', '--scale', 'smoke', '--corpus', '../data/mine.jsonl', '--papers', papers, cwd=cwd)
    s['corpus'] = _snapshot(papers)
    return papers, r, s, cwd, corpus


HEADLINES = {'baseline': {'eval_loss', 'ppl', 'params'},
             'diloco': {'ppl_baseline', 'ppl_dp', 'ppl_diloco', 'bytes_dp', 'bytes_diloco', 'workers', 'H'},
             'async_localsgd': {'levels', 'ppl_sync_very', 'ppl_dn_dylu_very', 'time_sync_very', 'goodput_quorum_very'},
             'dipaco': {'ppl_dense_path', 'ppl_diloco', 'ppl_dipaco', 'ppl_dense_total', 'ppl_by_router', 'ppl_reroute'},
             'optformer_planning': {'regret', 'suggest_seconds', 'imitation', 'paired'},
             'alma': {'auc_error', 'final_acc', 'flops', 'params', 'growth', 'claims'},
             'mntdp_ctrl': {'streams', 'transfer_s_minus_mntdp_d', 'transfer_s_minus_finetune', 'acc_s_long_mntdp_d',
                            'memory_mb_s_long_mntdp_d', 'growth_exponent_mntdp_d', 'claims'},
             'continual_language': {'sequences', 'transfer', 'transfer_claims', 'selections', 'flores_chrf', 'claims'},
             'nevis': {'budget_low', 'budget_mid', 'budget_high', 'err_low_pruned_0', 'err_low_best_pruned', 'err_mid_finetune_knn',
                       'err_mid_finetune', 'err_mid_independent', 'pretrain_flops', 'claims'}}


@pytest.mark.parametrize('name', sorted(HEADLINES))
def test_reproduce_smoke(reproduced, name):
    papers, r, _, cwd, _ = reproduced
    assert r['smoke'].returncode == 0, r['smoke'].stderr[-4000:]
    res = json.loads((papers/'results'/f'{name}-smoke.json').read_text())
    assert HEADLINES[name] | {'measured_on'} <= set(res)
    assert all(math.isfinite(v) and v > 1 for key, v in res.items() if key.startswith('ppl') and isinstance(v, (int, float)))
    assert {'lowcomm', 'torch', 'python', 'device'} <= set(res['measured_on'])
    executed = nbformat.read(papers/'executed'/f'{name}-smoke.ipynb', as_version=4)
    code = [c for c in executed.cells if c.cell_type == 'code']
    assert any(c.outputs for c in code), "the executed notebook has no outputs"
    assert not any(o.get('output_type') == 'error' for c in code for o in c.outputs)
    assert any('injected-parameters' in c.metadata.get('tags', []) for c in code)  # papermill passed scale=smoke
    assert not list(cwd.iterdir())  # nothing written to the working directory
    if name == 'baseline':
        assert math.isclose(res['ppl'], math.exp(res['eval_loss']), rel_tol=1e-6)
        assert res['config']['eval_batch_size'] == res['config']['batch_size'] == 8
    elif name == 'diloco':
        assert res['bytes_dp'] == res['H'] * res['bytes_diloco']   # fp32 both ways: H times fewer messages
        assert res['corpus'] == 'stdlib'
    elif name == 'optformer_planning':   # the layout: method -> checkpoint -> mean normalized regret; horizon -> seconds
        assert {'random', 'tpe', 'gp', 'policy', 'ei', 'plan_h1', 'plan_h2'} <= set(res['regret']) and set(res['suggest_seconds']) == {'0', '1', '2'}, res
        assert all(0 <= v <= 1 for by_n in res['regret'].values() for v in by_n.values())
    elif name == 'dipaco':   # the routers' and re-routing's tables
        assert set(res['ppl_by_router']) == {'kmeans', 'product_kmeans', 'discriminative'} and '0' in res['ppl_reroute'], res
    elif name == 'alma':   # the layout: waiting rate -> anytime error area (per source, with replay or new data only); growth; FLOPs
        areas = [by_k for src in res['auc_error'].values() for by_k in src.values()]
        assert areas and all({'k1', 'kall'} <= set(by_k) and all(0 <= v <= 1 for v in by_k.values()) for by_k in areas), res['auc_error']
        assert all(s['flops'] > 0 for src in res['growth'].values() for s in src.values()), res['growth']
    elif name == 'mntdp_ctrl':   # the layout: stream -> learner -> acc, transfer, forgetting, memory_mb
        streams = {'s_minus', 's_plus', 's_in', 's_out', 's_pl', 's_long'}
        learners = {'independent', 'finetune', 'finetune_knn', 'mntdp_s', 'mntdp_d'}
        assert set(res['streams']) == streams and all(set(by_l) == learners for by_l in res['streams'].values()), res['streams']
        assert all({'acc', 'transfer', 'forgetting', 'memory_mb'} <= set(v) for by_l in res['streams'].values() for v in by_l.values())
    elif name == 'continual_language':   # the layout: sequence type -> learner -> final, average (higher is better)
        assert set(res['sequences']) == {'positive', 'negative', 'none', 'mixed'}, res['sequences']
        assert all(set(by_l) == {'base', 'previous', 'selective'} and all(set(v) == {'final', 'average'} and 0 <= v['final'] <= 1 for v in by_l.values())
                   for by_l in res['sequences'].values()), res['sequences']
        assert all(len(res['transfer'][k]) == len(res['tasks'][k]) == len(res['selections'][k]) for k in res['sequences'])
        chrf = res['flores_chrf']   # language x language, the diagonal not scored
        assert len(chrf['matrix']) == len(chrf['langs']) and all(len(row) == len(chrf['langs']) and row[i] is None for i, row in enumerate(chrf['matrix'])), chrf
    elif name == 'nevis':   # the layout: per learner and prune ratio, error against cumulative FLOPs, error at three budgets
        learners = {'independent', 'finetune', 'finetune_knn', 'pruned_0', 'pruned_25', 'pruned_50', 'pruned_75'}
        assert learners <= set(res) and all({'points', 'frontier', 'error_at_budget'} <= set(res[l]) for l in learners), res.keys()
        assert all(set(res[l]['error_at_budget']) == {'low', 'mid', 'high'} for l in learners)
    else:   # the issue's layout: per level, the five methods' perplexities, the times and goodput
        keys = {'ppl_sync', 'ppl_async', 'ppl_dn', 'ppl_dylu', 'ppl_dn_dylu', 'time_sync', 'time_dn_dylu', 'goodput'}
        assert set(res['levels']) == {'none', 'slight', 'moderate', 'very'} and all(keys <= set(v) for v in res['levels'].values()), res['levels']


def test_reproduce_all_writes_results_md(reproduced):
    papers, r, _, cwd, _ = reproduced
    names = sorted(p.stem for p in REPO_PAPERS.glob("*.ipynb"))
    for i, name in enumerate(names, 1): assert re.search(rf'\[{i}/{len(names)}\] {name}: ok in [\d.]+ s', r['smoke'].stdout), r['smoke'].stdout
    md = (papers/'RESULTS-smoke.md').read_text()
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


def test_smoke_leaves_committed_results(reproduced):
    "A smoke run adds only smoke files; every committed file (cpu json, notebooks, figures, pages, index) is byte for byte as it was."
    _, _, s, _, _ = reproduced
    assert CPU_FILES <= set(s['committed']), sorted(s['committed'])
    assert {p: s['smoke'].get(p) for p in s['committed']} == s['committed'], [p for p in s['committed'] if s['smoke'].get(p) != s['committed'][p]]
    assert all('smoke' in p for p in set(s['smoke']) - set(s['committed'])), sorted(set(s['smoke']) - set(s['committed']))


def test_results_index(reproduced):
    "RESULTS.md links the cpu page, names the smoke page without linking it, says gpu has none; every link in the pages resolves."
    papers, *_ = reproduced
    index = (papers/'RESULTS.md').read_text()
    assert '| [cpu](RESULTS-cpu.md) | minutes on a 2-core CPU; should reproduce the direction of each claim | alma, async_localsgd, baseline, continual_language, diloco, dipaco, mntdp_ctrl, nevis, optformer_planning |' in index, index
    assert re.search(r'^\| gpu \| .* \| none \|$', index, re.M) and '](RESULTS-smoke.md)' not in index, index
    assert '# Reproductions at scale `cpu`' in (papers/'RESULTS-cpu.md').read_text()
    for page in papers.glob('RESULTS*.md'):
        for link in re.findall(r'\]\(([^)#]+)\)', page.read_text()): assert (papers/link).is_file(), (page.name, link)


def test_failing_gpu_scale_changes_nothing(reproduced):
    "Without a GPU and the hub, --scale gpu fails before any notebook runs, in one line, and writes nothing."
    _, r, s, _, _ = reproduced
    for run in (r['gpu'], r['gpu_one']):
        assert run.returncode == 2, (run.returncode, run.stdout[-2000:], run.stderr[-3000:])
        assert run.stderr.strip() == GPU_MISSING, run.stderr
        assert 'started' not in run.stdout, run.stdout
    assert s['gpu'] == s['smoke']


def test_reproduce_on_own_corpus(reproduced):
    "--corpus PATH (relative to the working directory) runs the paper on it and writes beside the default results, not over them."
    papers, r, s, cwd, corpus = reproduced
    assert r['corpus'].returncode == 0, r['corpus'].stderr[-4000:]
    res = json.loads((papers/'results'/'baseline-smoke-mine.json').read_text())
    assert res['config']['corpus'] == str(corpus.resolve()) and res['config']['max_docs'] == 60
    assert {p: s['corpus'].get(p) for p in s['gpu'] if p != 'RESULTS-smoke.md'} == {p: h for p, h in s['gpu'].items() if p != 'RESULTS-smoke.md'}
    assert {'executed/baseline-smoke-mine.ipynb', 'figures/baseline-smoke-mine-1.png'} <= set(s['corpus'])
    md = (papers/'RESULTS-smoke.md').read_text()
    assert '## baseline on corpus `mine`' in md and '](figures/baseline-smoke-mine-1.png)' in md, md
    assert not list(cwd.iterdir())


TEXT_FREE = {'optformer_planning.ipynb',   # studies of BBOB functions: no corpus to choose
             'alma.ipynb', 'mntdp_ctrl.ipynb', 'nevis.ipynb',   # continual learning on images
             'continual_language.ipynb'}   # tasks named by stdlib domains (a local corpus: the stream 'lang_KIND:text=PATH,domains=A/B/C/D')

@pytest.mark.parametrize('paper', sorted(p.name for p in REPO_PAPERS.glob('*.ipynb')))
def test_papers_list_their_parameters(paper):
    "Each paper keeps a kernelspec, so papermill can list its parameters: scale, and corpus where it trains on text (not the HPO paper's)."
    r = subprocess.run([sys.executable, '-m', 'papermill', '--help-notebook', str(REPO_PAPERS/paper)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r'^\s+scale: ', r.stdout, re.M), r.stdout
    assert bool(re.search(r'^\s+corpus: ', r.stdout, re.M)) == (paper not in TEXT_FREE), r.stdout


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
