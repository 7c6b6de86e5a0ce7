"`lowcomm continual` as a user runs it: killed for real within a task and resumed, and one-line errors for what it cannot run."
import json, subprocess

import pytest

from _cli import checkpoint_step, kill_at_checkpoint, lowcomm, lowcomm_cmd
from lowcomm.core import RunRecord

# S- at smoke scale with a tiny network: 6 tasks of 200 steps in chunks of 5, so task 0 alone is 40 checkpoints.
RUN = ['continual', '--stream', 's_minus', '--scale', 'smoke', '--learner', 'finetune_knn', '--width', '4',
       '--min_steps', '200', '--max_steps', '200', '--eval_every', '50', '--chunk', '5', '--probe', '64']
TIMEOUT = 300


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    "One BLAS/OpenMP thread in the subprocesses, so that two processes computing the same steps agree to the bit."
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): monkeypatch.setenv(var, '1')


def test_killed_within_a_task_resumes_to_the_same_rows(tmp_path):
    crashed, whole = tmp_path/'crashed', tmp_path/'whole'
    with open(tmp_path/'crashed.log', 'wb') as log:
        victim = subprocess.Popen([*lowcomm_cmd(), *RUN, '--run_dir', str(crashed)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        kill_at_checkpoint(victim, crashed, 3, TIMEOUT)   # three chunks into task 0
    planned = json.loads((crashed/'config.json').read_text())['steps']
    killed_at = max(checkpoint_step(cp) for cp in RunRecord(crashed).checkpoints())
    assert killed_at < planned[0] // 5, f"killed after task 0 ended (chunk {killed_at}): not within a task"

    for run_dir in (crashed, whole):
        r = lowcomm(*RUN, '--run_dir', run_dir, cwd=tmp_path, timeout=TIMEOUT)
        assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
        assert '6 of 6 tasks: average accuracy' in r.stdout, r.stdout
    rec, ref = RunRecord(crashed), RunRecord(whole)
    assert rec.status['state'] == ref.status['state'] == 'finished'
    same = lambda rows: [{k: v for k, v in row.items() if k not in ('time', 'seconds')} for row in rows]
    assert same(rec.metrics('task')) == same(ref.metrics('task'))      # accuracies, FLOPs, memory, choices: bit for bit
    assert [m['step'] for m in rec.metrics('train')] == list(range(1, sum(planned) // 5 + 1))   # every chunk logged once


@pytest.mark.parametrize('flags, says', [
    (['--learner', 'ewc'], "learner = 'ewc' is not allowed: expected one of 'independent', 'finetune', 'finetune_knn'"),
    (['--learner', 'finetune:wait=2'], "learner option 'wait=2' of 'finetune' is not allowed"),
    (['--stream', 's_huge'], "s_huge"),
    (['--scale', 'huge'], "ContinualConfig.scale = 'huge' is not allowed: expected one of 'smoke', 'cpu', 'gpu'"),
], ids=['learner', 'learner-option', 'stream', 'scale'])
def test_bad_settings_one_line(tmp_path, flags, says):
    r = lowcomm('continual', '--run_dir', tmp_path/'run', '--scale', 'smoke', *flags, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('lowcomm continual: ') and says in lines[0], r.stderr


def test_language_stream_from_the_command_line(tmp_path):
    "A continual language run from the CLI: the translation track's stream, the selective learner's estimates in the record."
    r = lowcomm('continual', '--stream', 'lang_translation', '--scale', 'smoke', '--learner', 'selective:steps=4,probe_steps=1',
                '--eval_every', '4', '--chunk', '4', '--probe', '8', '--batch', '8', '--run_dir', tmp_path/'run', cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    rows = RunRecord(tmp_path/'run').metrics('task')
    assert [row['task'] for row in rows] == ['translate:eng-xx_c3', 'translate:eng-xx_cl1', 'translate:eng-xx_cl2', 'translate:xx_cl1-eng']
    assert [len(row['choice']['estimates']) for row in rows] == [1, 2, 3, 4]          # the base, then every past task too
    assert all(row['choice']['from'] == min(row['choice']['estimates'], key=row['choice']['estimates'].get) for row in rows)
    scores = RunRecord(tmp_path/'run').metrics('scores')                               # the FLORES chrF matrix after every task
    assert [(s['task'], s['metric'], s['langs']) for s in scores] == [(row['task'], 'chrf', ['eng', 'xx_c3', 'xx_cl1', 'xx_cl2']) for row in rows]
    assert [sum(v is not None for line in s['matrix'] for v in line) for s in scores] == [1, 2, 3, 6]   # learned pairs, then pivots


def test_language_sequence_of_a_local_corpus_from_the_command_line(tmp_path):
    "A language sequence of a local corpus (a folder per domain) named with its options, as the stream's spec."
    corpus = tmp_path/'corpus'
    for domain, word in zip('abcd', ('alpha', 'beta', 'gamma', 'delta')):
        (corpus/domain).mkdir(parents=True)
        for i in range(40): (corpus/domain/f'{i}.txt').write_text(f'{word} note {i}: ' + 'the quick brown fox jumps over the lazy dog.\n' * 30)
    r = lowcomm('continual', '--stream', f'lang_none:text={corpus},domains=c/b/a/d', '--scale', 'smoke', '--learner', 'previous:steps=4',
                '--eval_every', '4', '--chunk', '4', '--batch', '8', '--run_dir', tmp_path/'run', cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert [row['task'] for row in RunRecord(tmp_path/'run').metrics('task')] == ['c:plain', 'b:caesar3', 'c:conlang1']
    bad = lowcomm('continual', '--stream', 'lang_none:domains=a/b', '--scale', 'smoke', '--learner', 'base', cwd=tmp_path, timeout=TIMEOUT)
    assert bad.returncode == 2 and "domains = 'a/b' is not allowed: expected four source names" in bad.stderr, bad.stderr
