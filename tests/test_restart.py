"""The restart path under torchrun: one job per run directory (a second is refused, naming the holder), workers that die
with their agent, stale temp files cleared by the next job, and a rank 0 killed mid-run handing the lock to its successor."""
import os, re, signal, time

import torch

from _cli import lowcomm
from lowcomm.core import RunRecord
from lowcomm.distributed.diloco import DiLoCoConfig
from test_dist import SMALL, simulated_theta, torchrun, wait_for_round, worker_pids   # noqa: F401 (torchrun: a fixture)

FLAGS = [x for k, v in SMALL.items() for x in (f'--{k}', str(v))]


def rows_once(rec: RunRecord, rounds: int):
    assert [r['round'] for r in rec.metrics('round')] == list(range(1, rounds + 1))


def test_a_second_job_is_refused(tmp_path, torchrun):
    cfg = DiLoCoConfig(**SMALL, steps=3000, H=10)
    run_dir = tmp_path/'run'
    p = torchrun(cfg, run_dir)
    wait_for_round(p, RunRecord(run_dir), 1)
    holder = worker_pids(run_dir, rank=0)
    second = lowcomm('diloco', '--run_dir', run_dir, *FLAGS, '--steps', '3000', '--H', '10', cwd=tmp_path, timeout=300)
    assert second.returncode == 2, second.stdout + second.stderr
    said = [l for l in second.stderr.splitlines() if 'is in use by' in l]
    assert len(said) == 1 and f'pid {holder[0]} on ' in said[0] and 'lowcomm.cli diloco' in said[0], second.stderr
    assert said[0].startswith(f'lowcomm diloco: run directory {run_dir.resolve()} is in use by'), said
    assert p.poll() is None, 'the first job stopped'


def test_killed_agent_takes_its_workers_along(tmp_path, torchrun):
    "SIGKILL torchrun: its workers exit too; the job started again clears the temp files of interrupted writes and ends as the simulator."
    cfg = DiLoCoConfig(**SMALL, steps=300, H=10)
    run_dir = tmp_path/'run'
    p = torchrun(cfg, run_dir)
    rec = RunRecord(run_dir)
    wait_for_round(p, rec, 2)
    assert len(worker_pids(run_dir)) == 3, worker_pids(run_dir)      # the agent and its two workers
    os.kill(p.pid, signal.SIGKILL); p.wait()
    deadline = time.time() + 30                                        # generous: the kernel kills them at once
    while worker_pids(run_dir) and time.time() < deadline: time.sleep(0.05)
    assert worker_pids(run_dir) == [], 'orphaned workers still run'
    saved = rec.load_checkpoint()['round']
    assert saved < cfg.rounds and max(r['round'] for r in rec.metrics('round')) <= saved   # a row is a saved round
    temps = [run_dir/'checkpoints'/f'.step-{saved + 1:08d}.pt.k2j1.tmp', run_dir/'checkpoints'/'workers'/f'.round-{saved + 1:06d}-worker1.pt.x9.tmp']
    for t in temps: t.write_bytes(b'\0' * 1000)                      # what writes killed midway leave
    out, _ = torchrun(cfg, run_dir).communicate(timeout=300)
    removed = re.search(rf'removed (\d+) temp files \([\d.]+ MB\) left in {re.escape(str(run_dir.resolve()))} by interrupted writes', out)
    assert removed and int(removed[1]) >= 2, out                      # ours, and any the kill itself cut short
    assert not any(t.exists() for t in temps) and not list(run_dir.rglob('*.tmp'))
    assert rec.status['state'] == 'finished', out
    rows_once(rec, cfg.rounds)
    assert [e['round'] for e in rec.metrics('start')] == [0, saved]
    torch.testing.assert_close(rec.load_checkpoint()['theta'], simulated_theta(cfg), rtol=1e-5, atol=1e-6)


def test_killed_lock_holder_hands_over_to_the_restarted_rank0(tmp_path, torchrun):
    cfg = DiLoCoConfig(**SMALL, steps=120, H=10)
    run_dir = tmp_path/'run'
    p = torchrun(cfg, run_dir, '--max-restarts', '1')
    rec = RunRecord(run_dir)
    wait_for_round(p, rec, 3)
    os.kill(worker_pids(run_dir, rank=0)[0], signal.SIGKILL)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert 'is in use by' not in out, out
    rows_once(rec, cfg.rounds)
    assert len(rec.metrics('start')) == 2 and rec.status['state'] == 'finished'
