"`lowcomm async_localsgd` as a user runs it: a tiny run on the simulated clock, and one-line errors for bad settings."
import json

import pytest

from _cli import lowcomm

TINY = ['--model', 'tiny', '--max_docs', '40', '--batch_size', '4', '--seq_len', '32', '--eval_batches', '2', '--workers', '2',
        '--H', '5', '--steps', '10', '--device', 'cpu']


def test_tiny_run(tmp_path):
    r = lowcomm('async_localsgd', '--run_dir', tmp_path/'run', *TINY, '--method', 'dn', '--heterogeneity', '2,1',
                cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines()]
    arrivals = [x for x in rows if x['event'] == 'arrival']
    assert len(arrivals) == 4 and [x['worker'] for x in arrivals].count(0) > [x['worker'] for x in arrivals].count(1), arrivals  # the fast one more often
    assert any(x['event'] == 'eval' for x in rows)


@pytest.mark.parametrize('flags, says', [
    (['--method', 'fedavg'], "AsyncConfig.method = 'fedavg' is not allowed"),
    (['--heterogeneity', '1,0'], "AsyncConfig.heterogeneity = '1,0' is not allowed"),
    (['--heterogeneity', '1,1,1'], "AsyncConfig.heterogeneity = '1,1,1' is not allowed with workers = 2"),
    (['--shard_draw', 'own'], "AsyncConfig.shard_draw = 'own' is not allowed: expected one of 'sampled', 'pinned'"),
    (['--budget', 'time'], "AsyncConfig.budget = 'time' is not allowed: expected one of 'steps', 'jobs'"),
    (['--straggle', '1@300-100x4'], "AsyncConfig.straggle = '1@300-100x4' is not allowed: expected '' or comma-separated W@START-ENDxFACTOR"),
    (['--join', '1'], "AsyncConfig.join = '1' is not allowed: expected '' or comma-separated W@TIME"),
    (['--fail', '5@1-2'], "AsyncConfig.fail = '5@1-2' is not allowed with workers = 2: expected workers 0 to 1"),
    (['--fail', '1@1-5,1@4-8'], "AsyncConfig.fail = '1@1-5,1@4-8' is not allowed with join = '': expected worker 1's failures to start after"),
    (['--method', 'quorum', '--quorum', '3'], "AsyncConfig.quorum = 3 is not allowed with workers = 2: expected an integer from 1 to 2"),
], ids=['method', 'zero-speed', 'speed-count', 'shard-draw', 'budget', 'straggle', 'join', 'fail-worker', 'fail-overlap', 'quorum'])
def test_bad_settings_one_line(tmp_path, flags, says):
    r = lowcomm('async_localsgd', '--run_dir', tmp_path/'run', *TINY, *flags, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    assert not (tmp_path/'run').exists()
