"""Asynchronous Local-SGD as real processes on loopback: a server and two workers of different speeds (`lowcomm async_server`,
`lowcomm async_worker`), one of them killed mid-run and started again. The fast worker arrives more often, the server goes on
without the dead one and takes it back, and the server's final parameters equal the simulator replaying the logged events."""
import os, re, signal, subprocess, time

import torch

from _cli import lowcomm, lowcomm_cmd
from lowcomm.core import RunRecord
from lowcomm.distributed.async_dist import replay
from lowcomm.distributed.ft import torch_threads

TINY = ['--model', 'tiny', '--max_docs', '60', '--batch_size', '8', '--seq_len', '64', '--eval_batches', '2', '--workers', '2',
        '--device', 'cpu', '--budget', 'jobs', '--timeout', '120']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}   # float results depend on the thread count: the replay uses the same


def start(*args, cwd):
    return subprocess.Popen([*lowcomm_cmd(), *map(str, args)], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def serve(tmp_path, *flags):
    "Start a server on a free port; it and its address."
    server = start('async_server', '--run_dir', tmp_path/'run', '--bind', '127.0.0.1:0', *TINY, *flags, cwd=tmp_path)
    line = server.stdout.readline()
    m = re.match(r'serving at (\S+):', line)
    assert m, line + server.stderr.read()
    return server, m[1]


def arrivals(rec: RunRecord) -> list[dict]:
    return rec.metrics('arrival') if rec.metrics_path.exists() else []


def wait_until(server, rec, done, what):
    deadline = time.time() + 300
    while not done(arrivals(rec)):
        assert server.poll() is None, f"the server stopped before {what}: " + server.stderr.read()
        assert time.time() < deadline, f"no {what} within 300 s"
        time.sleep(0.05)


def test_kill_and_restart_a_worker(tmp_path):
    server, address = serve(tmp_path, '--H', '20', '--steps', '400', '--method', 'dn', '--heterogeneity', '1,0.25')  # 40 arrivals
    rec = RunRecord(tmp_path/'run')
    workers = {w: start('async_worker', '--server', address, '--worker', w, cwd=tmp_path) for w in (0, 1)}
    wait_until(server, rec, lambda rows: len(rows) >= 4, 'four arrivals')
    workers[0].send_signal(signal.SIGKILL); workers[0].wait()
    lost = lambda rows: next((i for i, r in enumerate(rows) if ['lost', 0] in [e[:2] for e in r['events']]), None)
    wait_until(server, rec, lambda rows: lost(rows) is not None and len(rows) > lost(rows) + 1, 'arrival after the loss')
    workers[0] = start('async_worker', '--server', address, '--worker', 0, cwd=tmp_path)
    out, err = server.communicate(timeout=600)
    assert server.returncode == 0, err
    for w, p in workers.items():
        said, why = p.communicate(timeout=120)
        assert p.returncode == 0 and re.fullmatch(rf'worker {w}: \d+ jobs\n', said), (w, said, why)
    rows = arrivals(rec)
    events = [(i, e[:2]) for i, r in enumerate(rows) for e in r['events']]
    assert len(rows) == 40 and rec.status['state'] == 'finished', (len(rows), rec.status)
    at_loss = next(i for i, e in events if e == ['lost', 0])
    rejoined = next(i for i, e in events if e == ['join', 0] and i > at_loss)
    assert any(r['worker'] == 1 for r in rows[at_loss:rejoined]), 'the server stopped while worker 0 was down'
    assert any(r['worker'] == 0 for r in rows[rejoined:]), 'the restarted worker did not arrive again'
    assert 0 in rows[rejoined]['fresh'] and 0 in rows[rejoined]['joined']   # a new process: its inner optimizer starts over
    by = [r['worker'] for r in rows]
    assert by.count(0) > by.count(1), by                              # the fast worker, even with its downtime
    with torch_threads(1): again = replay(tmp_path/'run')
    final = rec.load_checkpoint()
    assert torch.equal(final['theta'], again.theta) and final['version'] == again.version   # bit for bit


def test_bad_settings_one_line(tmp_path):
    for flags, says in [(['--method', 'sync'], "AsyncConfig.method = 'sync' is not allowed on the real engine: expected one of"),
                        (['--budget', 'steps'], "AsyncConfig.budget = 'steps' is not allowed on the real engine: expected 'jobs'"),
                        (['--bind', 'nowhere'], "address = 'nowhere' is not allowed: expected HOST:PORT")]:
        r = lowcomm('async_server', '--run_dir', tmp_path/'run', *TINY, *flags, cwd=tmp_path, env=ENV, timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    r = lowcomm('async_worker', '--server', '127.0.0.1:1', '--worker', '0', '--slowdown', '0.5', cwd=tmp_path, env=ENV, timeout=60)
    assert r.returncode == 2 and 'slowdown = 0.5 is not allowed: expected a number >= 1' in r.stderr, r.stderr
