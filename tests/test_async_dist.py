"""Asynchronous Local-SGD as real processes on loopback: a server and two workers of different speeds (`lowcomm async_server`,
`lowcomm async_worker`), one of them killed mid-run and started again. The fast worker arrives more often, the server goes on
without the dead one and takes it back, and the server's final parameters equal the simulator replaying the logged events."""
import os, re, signal, socket, subprocess, time

import torch

from _cli import lowcomm, lowcomm_cmd
from lowcomm.core import RunRecord
from lowcomm.distributed.async_dist import replay
from lowcomm.distributed.ft import torch_threads

TINY = ['--model', 'tiny', '--max_docs', '60', '--batch_size', '8', '--seq_len', '64', '--eval_batches', '2', '--workers', '2',
        '--device', 'cpu', '--budget', 'jobs', '--timeout', '120']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}   # float results depend on the thread count: the replay uses the same


def start(name: str, *args, cwd):
    "Start `lowcomm ARGS`, its output in files NAME.out and NAME.err (pipes nobody reads could fill up and block it)."
    out, err = (open(cwd/f'{name}.{x}', 'w') for x in ('out', 'err'))
    return subprocess.Popen([*lowcomm_cmd(), *map(str, args)], cwd=cwd, env=ENV, stdout=out, stderr=err, text=True)


def said(cwd, name: str, x: str = 'out') -> str: return (cwd/f'{name}.{x}').read_text()


def serve(tmp_path, *flags):
    "Start a server on a free port; it and its address."
    server = start('server', 'async_server', '--run_dir', tmp_path/'run', '--bind', '127.0.0.1:0', *TINY, *flags, cwd=tmp_path)
    deadline = time.time() + 120
    while not (m := re.match(r'serving at (\S+):', said(tmp_path, 'server'))):
        assert server.poll() is None and time.time() < deadline, said(tmp_path, 'server', 'err')
        time.sleep(0.05)
    return server, m[1]


def arrivals(rec: RunRecord) -> list[dict]:
    return rec.metrics('arrival') if rec.metrics_path.exists() else []


def wait_until(server, rec, done, what):
    deadline = time.time() + 300
    while not done(arrivals(rec)):
        assert server.poll() is None, f"the server stopped before {what}: " + said(rec.path.parent, 'server', 'err')
        assert time.time() < deadline, f"no {what} within 300 s"
        time.sleep(0.05)


def test_kill_and_restart_a_worker(tmp_path):
    server, address = serve(tmp_path, '--H', '20', '--steps', '400', '--method', 'dn', '--heterogeneity', '1,0.25')  # 40 arrivals
    rec = RunRecord(tmp_path/'run')
    workers = {w: start(f'worker{w}', 'async_worker', '--server', address, '--worker', w, cwd=tmp_path) for w in (0, 1)}
    wait_until(server, rec, lambda rows: len(rows) >= 4, 'four arrivals')
    workers[0].send_signal(signal.SIGKILL); workers[0].wait()
    lost = lambda rows: next((i for i, r in enumerate(rows) if ['lost', 0] in [e[:2] for e in r['events']]), None)
    # the server goes on without worker 0: arrivals keep coming after its loss (else this wait fails)
    wait_until(server, rec, lambda rows: lost(rows) is not None and len(rows) > lost(rows) + 1, 'arrivals after the loss')
    workers[0] = start('worker0-again', 'async_worker', '--server', address, '--worker', 0, cwd=tmp_path)
    assert server.wait(timeout=600) == 0, said(tmp_path, 'server', 'err')
    for name, p in (('worker0-again', workers[0]), ('worker1', workers[1])):
        assert p.wait(timeout=120) == 0 and re.fullmatch(r'worker \d: \d+ jobs\n', said(tmp_path, name)), (name, said(tmp_path, name, 'err'))
    rows = arrivals(rec)
    events = [(i, e[:2]) for i, r in enumerate(rows) for e in r['events']]
    assert len(rows) == 40 and rec.status['state'] == 'finished', (len(rows), rec.status)
    at_loss = next(i for i, e in events if e == ['lost', 0])
    rejoined = next(i for i, e in events if e == ['join', 0] and i > at_loss)
    assert any(r['worker'] == 0 for r in rows[rejoined:]), 'the restarted worker did not arrive again'
    assert 0 in rows[rejoined]['fresh'] and 0 in rows[rejoined]['joined']   # a new process: its inner optimizer starts over
    by = [r['worker'] for r in rows]
    assert by.count(0) > by.count(1), by                              # the fast worker, even with its downtime
    with torch_threads(1): again = replay(tmp_path/'run')
    final = rec.load_checkpoint()
    assert torch.equal(final['theta'], again.theta) and final['version'] == again.version   # bit for bit


def test_bad_settings_one_line(tmp_path):
    (tmp_path/'used').mkdir(); (tmp_path/'used'/'config.json').write_text('{}')
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0)); taken.listen()
        for flags, says in [(['--method', 'sync'], "AsyncConfig.method = 'sync' is not allowed on the real engine: expected one of"),
                            (['--budget', 'steps'], "AsyncConfig.budget = 'steps' is not allowed on the real engine: expected 'jobs'"),
                            (['--bind', 'nowhere'], "address = 'nowhere' is not allowed: expected HOST:PORT"),
                            (['--bind', f'127.0.0.1:{taken.getsockname()[1]}'], "is not allowed: "),
                            (['--run_dir', tmp_path/'used'], "it holds a run already, and the server does not resume")]:
            r = lowcomm('async_server', '--run_dir', tmp_path/'run', *TINY, *flags, cwd=tmp_path, env=ENV, timeout=120)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, (flags, r.stderr)
    for flags, says in [(['--slowdown', '0.5'], 'slowdown = 0.5 is not allowed: expected a number >= 1'),
                        (['--timeout', '0'], 'timeout = 0.0 is not allowed: expected a number of seconds > 0'),
                        (['--timeout', '2'], 'no server answers at 127.0.0.1:1 (waited 2 s): start it first')]:
        r = lowcomm('async_worker', '--server', '127.0.0.1:1', '--worker', '0', *flags, cwd=tmp_path, env=ENV, timeout=60)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, (flags, r.stderr)
