"`lowcomm train` end to end, as a user runs it: a real crash and resume, bad configs, missing data, corrupt checkpoints."
import json, shutil, subprocess

import pytest
import torch

from _cli import checkpoint_step, kill_at_checkpoint, lowcomm, lowcomm_cmd
from lowcomm.core import RunRecord

# A small run: a few seconds of CPU. Evaluations, train logs and checkpoints every 10 steps.
STEPS = 60
SMALL = ['--model', 'tiny', '--max_docs', '40', '--batch_size', '4', '--seq_len', '32',
         '--eval_every', '10', '--eval_batches', '2', '--log_every', '10', '--device', 'cpu']
RUN = ['--steps', str(STEPS), '--checkpoint_every', '10', *SMALL]
TIMEOUT = 240


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    "One BLAS/OpenMP thread in the subprocesses, so that two processes computing the same steps agree to the bit."
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): monkeypatch.setenv(var, '1')


def start(*args, cwd, log) -> subprocess.Popen:
    return subprocess.Popen([*lowcomm_cmd(), *map(str, args)], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def assert_one_clear_line(r: subprocess.CompletedProcess):
    "Exit status 2 and a single `lowcomm train: ...` line on stderr, no traceback."
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert 'Traceback' not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('lowcomm train: '), r.stderr


# ---------------------------------------------------------------------------------------------------------
# crash and resume

def test_crash_and_resume(tmp_path):
    crashed, ref = tmp_path/'crashed', tmp_path/'uninterrupted'
    with open(tmp_path/'crashed.log', 'wb') as clog, open(tmp_path/'ref.log', 'wb') as rlog:
        reference = start('train', '--run_dir', ref, *RUN, cwd=tmp_path, log=rlog)  # runs alongside
        try:
            victim = start('train', '--run_dir', crashed, *RUN, cwd=tmp_path, log=clog)
            kill_at_checkpoint(victim, crashed, 20, TIMEOUT)   # at the step-20 checkpoint (or a later one): a crash for real

            rec = RunRecord(crashed)
            assert rec.status['state'] == 'running'  # it really died mid-run
            cps = rec.checkpoints()
            # Only complete, non-temp checkpoints are listed: the atomic writer's `.step-*.tmp` files are not.
            assert cps and all(p.name.startswith('step-') and p.suffix == '.pt' for p in cps), cps
            for tmp in (crashed/'checkpoints').glob('.*'): assert tmp.name.endswith('.tmp'), tmp
            newest = checkpoint_step(cps[-1])
            assert 20 <= newest < STEPS, f"killed too late: newest checkpoint is step {newest}"
            state = rec.load_checkpoint()  # must not raise, even with a half-written temp file beside it
            assert state['step'] == newest
            assert set(state) >= {'model', 'opt', 'step'}
            for cp in cps:  # every checkpoint left is complete
                assert torch.load(cp, map_location='cpu', weights_only=True)['step'] == checkpoint_step(cp)

            # Rerun the same command: it resumes from the newest checkpoint and finishes.
            r = lowcomm('train', '--run_dir', crashed, *RUN, cwd=tmp_path)
            assert r.returncode == 0, r.stderr[-3000:]
            assert 'Traceback' not in r.stderr
            assert reference.wait(timeout=TIMEOUT) == 0, (tmp_path/'ref.log').read_text()[-3000:]
        finally:
            if reference.poll() is None: reference.kill(); reference.wait()

    rec, ref_rec = RunRecord(crashed), RunRecord(ref)
    assert rec.status['state'] == 'finished' and rec.status['step'] == STEPS
    assert ref_rec.status['state'] == 'finished'
    resumed, uninterrupted = rec.load_checkpoint(), ref_rec.load_checkpoint()
    assert resumed['step'] == uninterrupted['step'] == STEPS
    assert resumed['model'].keys() == uninterrupted['model'].keys()
    for k, v in uninterrupted['model'].items():
        assert torch.equal(resumed['model'][k], v), f"parameter {k} differs from the uninterrupted run's"

    # The metrics stream reads as one run: every eval and train log once, in order, none redone twice.
    expected = list(range(10, STEPS + 1, 10))
    assert [m['step'] for m in rec.metrics('eval')] == expected
    assert [m['step'] for m in rec.metrics('train')] == expected
    assert [m['step'] for m in ref_rec.metrics('eval')] == expected
    # and the resumed run's evaluations agree with the uninterrupted run's
    assert [m['loss'] for m in rec.metrics('eval')] == [m['loss'] for m in ref_rec.metrics('eval')]
    # every line of metrics.jsonl is complete JSON (a line cut by the kill was rewound away)
    for line in rec.metrics_path.read_text().splitlines(): json.loads(line)


# ---------------------------------------------------------------------------------------------------------
# bad configuration

@pytest.mark.parametrize('flags, names, allowed', [
    (['--steps', '0'], 'TrainConfig.steps = 0', 'an integer >= 1'),
    (['--model', '2B'], "TrainConfig.model = '2B'", "one of 'tiny', 'small'"),
    (['--corpus', '/no/such.jsonl'], "TrainConfig.corpus = '/no/such.jsonl'", 'an existing path: a .jsonl'),
], ids=['steps', 'model', 'corpus'])
def test_bad_config(tmp_path, flags, names, allowed):
    r = lowcomm('train', '--run_dir', tmp_path/'run', *flags, cwd=tmp_path, timeout=120)
    assert_one_clear_line(r)
    assert names in r.stderr and 'is not allowed' in r.stderr and allowed in r.stderr, r.stderr
    assert not (tmp_path/'run').exists()  # nothing is started


# ---------------------------------------------------------------------------------------------------------
# missing or empty data

def test_empty_jsonl_corpus(tmp_path):
    corpus = tmp_path/'empty.jsonl'; corpus.write_text('')
    r = lowcomm('train', '--run_dir', tmp_path/'run', '--corpus', corpus, '--steps', '2', *SMALL, cwd=tmp_path, timeout=120)
    assert_one_clear_line(r)
    assert str(corpus) in r.stderr and 'empty' in r.stderr, r.stderr


def test_folder_without_text_files(tmp_path):
    folder = tmp_path/'texts'; folder.mkdir()
    (folder/'notes.md').write_text('not a .txt file\n')
    r = lowcomm('train', '--run_dir', tmp_path/'run', '--corpus', folder, '--steps', '2', *SMALL, cwd=tmp_path, timeout=120)
    assert_one_clear_line(r)
    # the message must say which folder and what is missing from it
    assert str(folder) in r.stderr and '.txt' in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------------------
# finished runs and corrupt checkpoints

SHORT = ['--steps', '4', '--checkpoint_every', '2', '--model', 'tiny', '--max_docs', '40', '--batch_size', '4',
         '--seq_len', '32', '--eval_every', '2', '--eval_batches', '1', '--log_every', '2', '--device', 'cpu']


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
    "A run directory holding a finished short run (copy it before changing it)."
    root = tmp_path_factory.mktemp('finished')
    r = lowcomm('train', '--run_dir', root/'run', *SHORT, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert RunRecord(root/'run').status['state'] == 'finished'
    return root/'run'


def test_rerun_finished_run(tmp_path, finished_run):
    "Running the same command on a finished run dir does no more training and exits cleanly."
    run = shutil.copytree(finished_run, tmp_path/'run')
    before = RunRecord(run).metrics()
    r = lowcomm('train', '--run_dir', run, *SHORT, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert RunRecord(run).status['state'] == 'finished'
    assert [m['step'] for m in RunRecord(run).metrics('eval')] == [m['step'] for m in before if m['event'] == 'eval']


def test_corrupt_checkpoint(tmp_path, finished_run):
    run = shutil.copytree(finished_run, tmp_path/'run')
    newest = RunRecord(run).checkpoints()[-1]
    newest.write_bytes(b'\x00garbage, not a checkpoint\xff' * 64)
    r = lowcomm('train', '--run_dir', run, *SHORT, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]   # after the corpus's log line
    assert last.startswith('lowcomm train: '), r.stderr
    assert 'is corrupt or unreadable' in last and str(newest) in last, r.stderr
    assert newest.read_bytes().startswith(b'\x00garbage')  # left for the user to inspect, not overwritten
