"`lowcomm dipaco` as a user runs it: a tiny run with its record, and one-line errors for grids, routers and shards it cannot make."
import json, re

import pytest

from _cli import lowcomm
from lowcomm.data import lm_data
from lowcomm.modular.dipaco import DiPaCoConfig

TINY = ['--model', 'tiny', '--max_docs', '40', '--batch_size', '4', '--seq_len', '32', '--eval_batches', '2', '--H', '5',
        '--steps', '10', '--device', 'cpu']


def test_tiny_run(tmp_path):
    r = lowcomm('dipaco', '--run_dir', tmp_path/'run', *TINY, '--grid', '2x2', cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines()]
    routing = next(x for x in rows if x['event'] == 'routing')
    train_docs = len(lm_data(DiPaCoConfig(model='tiny', max_docs=40)).train_docs)
    assert len(routing['shards']) == 4 and sum(routing['shards']) == 2 * train_docs   # top-2: every training document in two shards
    assert [x['round'] for x in rows if x['event'] == 'round'] == [1, 2]
    assert all(set(x['outer_grad_norm']) == {'stem', 'L0M0', 'L0M1', 'L1M0', 'L1M1'} for x in rows if x['event'] == 'round')
    ev = lowcomm('evaluate', tmp_path/'run', '--reroute', '0', '16', '--json', cwd=tmp_path, timeout=300)
    assert ev.returncode == 0, ev.stderr
    table = json.loads(ev.stdout)
    last = [x for x in rows if x['event'] == 'eval'][-1]
    assert set(table) == {'0', '16'} and abs(table['0']['loss'] - last['loss']) < 1e-5, (table, last)   # routed once: the run's own eval
    gen = lowcomm('generate', tmp_path/'run', '--prompt', 'import ', '--tokens', '20', '--reroute', '8', cwd=tmp_path, timeout=300)
    assert gen.returncode == 0 and gen.stdout.startswith('import ') and re.search(r'\[paths: \d, \d, \d\]', gen.stdout), gen.stdout + gen.stderr
    bad = lowcomm('evaluate', tmp_path, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and 'is not a DiPaCo run directory' in bad.stderr, bad.stderr


@pytest.mark.parametrize('flags, says', [
    (['--grid', '2x2x2'], "DiPaCoConfig.grid = '2x2x2' is not allowed with model = 'tiny' (n_layer = 2): expected a number of levels that divides n_layer (1, 2)"),
    (['--grid', '2by2'], "DiPaCoConfig.grid = '2by2' is not allowed: expected modules per level joined by 'x'"),
    (['--router', 'hash'], "DiPaCoConfig.router = 'hash' is not allowed: expected one of 'kmeans', 'product_kmeans', 'discriminative'"),
    (['--grid', '8x8'], "documents cannot make 64 shards: expected at least one document per shard"),
], ids=['grid-layers', 'grid-spec', 'router', 'too-few-documents'])
def test_bad_settings_one_line(tmp_path, flags, says):
    r = lowcomm('dipaco', '--run_dir', tmp_path/'run', *TINY, *flags, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    said = [l for l in r.stderr.splitlines() if l.startswith('lowcomm dipaco:')]   # (the corpus's info line may come first)
    assert len(said) == 1 and says in said[0], r.stderr
    assert not (tmp_path/'run').exists()
