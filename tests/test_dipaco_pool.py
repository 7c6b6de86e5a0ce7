"""DiPaCo on a pool of real worker processes on loopback (`lowcomm dipaco_server`, `lowcomm dipaco_worker`): one worker
killed mid-task and started again. Every path trains exactly once per round, the lost task runs again, and the grid ends
bit for bit where the simulated run ends."""
import os, re, signal, subprocess, time

import torch

from _cli import lowcomm, lowcomm_cmd
from lowcomm.core import RunRecord
from lowcomm.data import lm_data
from lowcomm.distributed.ft import torch_threads
from lowcomm.modular.dipaco import DiPaCo, DiPaCoConfig

SMALL = dict(model='tiny', max_docs=60, batch_size=8, seq_len=64, eval_batches=2, device='cpu', grid='2x2', workers=2, steps=40, H=5, lr=3e-3, warmup=5)
FLAGS = [x for k, v in SMALL.items() for x in (f'--{k}', str(v))]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def start(name, *args, cwd):
    out, err = (open(cwd/f'{name}.{x}', 'w') for x in ('out', 'err'))
    return subprocess.Popen([*lowcomm_cmd(), *map(str, args)], cwd=cwd, env=ENV, stdout=out, stderr=err, text=True)


def said(cwd, name, x='out') -> str: return (cwd/f'{name}.{x}').read_text()


def wait_for(check, what, procs=()):
    deadline = time.time() + 300
    while not check():
        assert all(p.poll() is None for p in procs), f"stopped before {what}"
        assert time.time() < deadline, f"no {what} within 300 s"
        time.sleep(0.05)


def test_a_worker_killed_mid_task(tmp_path):
    server = start('server', 'dipaco_server', '--run_dir', tmp_path/'run', '--bind', '127.0.0.1:0', *FLAGS, cwd=tmp_path)
    wait_for(lambda: re.match(r'serving at (\S+):', said(tmp_path, 'server')), 'address', [server])
    address = re.match(r'serving at (\S+):', said(tmp_path, 'server'))[1]
    workers = {w: start(f'worker{w}', 'dipaco_worker', '--server', address, '--worker', w, '--slowdown', '20', cwd=tmp_path) for w in (0, 1)}
    started = lambda name: said(tmp_path, name).count('worker ')
    wait_for(lambda: started('worker0') >= 3, "worker 0's third task", [server])
    workers[0].send_signal(signal.SIGKILL); workers[0].wait()               # mid-task: a task is its compute, then 19 times as long asleep
    rec = RunRecord(tmp_path/'run')
    rounds = lambda: rec.metrics('round') if rec.metrics_path.exists() else []
    done_before = len(rounds())
    wait_for(lambda: len(rounds()) > done_before, 'a round without worker 0', [server])   # the pool goes on with worker 1
    workers[0] = start('worker0-again', 'dipaco_worker', '--server', address, '--worker', 0, cwd=tmp_path)
    assert server.wait(timeout=600) == 0, said(tmp_path, 'server', 'err')
    for name, p in (('worker0-again', workers[0]), ('worker1', workers[1])):
        assert p.wait(timeout=120) == 0 and re.search(r'worker \d: \d+ path tasks\n$', said(tmp_path, name)), (name, said(tmp_path, name, 'err'))
    rows = rounds()
    assert [r['round'] for r in rows] == list(range(1, 9)) and rec.status['state'] == 'finished'
    for r in rows: assert sorted(p for p, w, outcome in r['tasks'] if outcome == 'done') == [0, 1, 2, 3], r['tasks']   # every path once a round
    lost = [(r['round'], p) for r in rows for p, w, outcome in r['tasks'] if outcome == 'lost']
    assert len(lost) == 1, lost                                                # the killed task, run again (by the 'done' check above)
    assert any(w == 0 and outcome == 'done' for r in rows[lost[0][0]:] for p, w, outcome in r['tasks']), 'the restarted worker took no task'
    cfg = DiPaCoConfig(**SMALL)
    with torch_threads(1): sim = DiPaCo(cfg, data=lm_data(cfg), progress=False); sim.fit()
    final = rec.load_checkpoint()['grid']
    assert all(torch.equal(a, b) for a, b in zip(final.values(), sim.grid.state_dict().values()))   # bit for bit


def test_bad_settings_one_line(tmp_path):
    r = lowcomm('dipaco_server', '--run_dir', tmp_path/'run', '--bind', 'nowhere', *FLAGS, cwd=tmp_path, env=ENV, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "address = 'nowhere' is not allowed" in r.stderr, r.stderr
    r = lowcomm('dipaco_worker', '--server', '127.0.0.1:1', '--worker', '0', '--timeout', '1', cwd=tmp_path, env=ENV, timeout=60)
    assert r.returncode == 2 and 'no server answers at 127.0.0.1:1' in r.stderr, r.stderr
