"The communicator and DiLoCo across real processes: torchrun on loopback (gloo) against the in-process simulator, and a killed worker."
import math, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from lowcomm.core import RunRecord
from lowcomm.distributed.diloco import DiLoCo, DiLoCoConfig
from lowcomm.distributed.eager import EagerConfig, EagerDiLoCo

TORCHRUN = shutil.which('torchrun', path=str(Path(sys.executable).parent)) or shutil.which('torchrun')
SMALL = dict(model='tiny', max_docs=40, batch_size=4, seq_len=32, lr=3e-3, warmup=2, eval_batches=2, workers=2)


@pytest.fixture
def torchrun():
    "Start `lowcomm KIND` (diloco unless told) with a config's fields under torchrun, `nproc` processes on loopback; whatever is left is killed after the test."
    started = []
    def start(cfg: DiLoCoConfig, run_dir, *extra, nproc: int = 2, kind: str = 'diloco'):
        flags = [x for k, v in cfg.to_dict().items() for x in (f'--{k}', str(v)) if v != '']
        cmd = [TORCHRUN, '--standalone', '--nproc_per_node', str(nproc), *extra, '-m', 'lowcomm.cli', kind, '--run_dir', str(run_dir), *flags]
        env = {**os.environ, 'OMP_NUM_THREADS': '1'}   # what torchrun sets for 2+ processes, for 1 too
        started.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env), run_dir))
        return started[-1][0]
    yield start
    for p, run_dir in started: kill_job(p, run_dir)


COMM_CHECK = """
import os, sys
from pathlib import Path
import torch
from lowcomm.comm import Communicator, DistComm, protocol_members
c = DistComm(n_workers=4)                                # two workers per process
w = torch.nn.Parameter(torch.ones(2)); w.grad = torch.ones(2)
torch.optim.AdamW([w]).step()                            # its first step imports torch.distributed.nn, which can pin the group
assert isinstance(c, Communicator) and not protocol_members(Communicator) - set(dir(c))
assert (c.world_size, c.local_workers) == (2, [2 * c.rank, 2 * c.rank + 1])
got = c.all_gather([torch.full((3,), w, dtype=torch.uint8) for w in c.local_workers])
assert [t.tolist() for t in got] == [[w] * 3 for w in range(4)], got
assert c.all_reduce([torch.tensor([1.0, w]) for w in c.local_workers]).tolist() == [4.0, 6.0]
alone = c.group([2, 3])                                  # every process creates every group, in the same order
pair = c.group([1, 2])
if c.rank == 0: assert alone is None
else: assert (alone.world_size, alone.is_main, alone.all_reduce([torch.ones(1)] * 2).item()) == (1, True, 2.0)
assert (pair.workers, pair.world_size, pair.local_workers) == ([1, 2], 2, [1 + c.rank])
assert [t.item() for t in pair.all_gather([torch.tensor([10 * (1 + c.rank)])])] == [10, 20]
assert pair.all_reduce([torch.tensor([1 + c.rank], dtype=torch.bfloat16)]).item() == 3
if c.rank == 0:
    c.push(torch.arange(6.).view(2, 3), to=2, sender=0); c.push(torch.tensor([7], dtype=torch.int8), to=2, sender=0)
    c.push(torch.tensor([1.5]), to=1, sender=0)          # same process: the mailbox
    assert c.pull(0, receiver=1).tolist() == [1.5]
    assert c.pull(3, receiver=0).dtype == torch.bfloat16
else:
    a, b = c.pull(0, receiver=2), c.pull(0, receiver=2)  # in the order pushed
    assert a.tolist() == [[0, 1, 2], [3, 4, 5]] and b.dtype == torch.int8 and b.item() == 7, (a, b)
    c.push(torch.ones(2, dtype=torch.bfloat16), to=0, sender=3)
c.barrier()
for g in (pair, alone, c):
    if g: g.close()
del pair, alone
threads = [Path(f'/proc/self/task/{t}/comm').read_text().strip() for t in os.listdir('/proc/self/task')]
assert not [t for t in threads if 'gloo' in t], f"gloo threads outlive close (they can abort the exit): {threads}"
(Path(sys.argv[1])/f'ok-{c.rank}').touch()
"""


def test_dist_comm_implements_the_contract(tmp_path):
    "Every member of `Communicator` on two gloo processes: collectives, groups and point-to-point messages."
    script = tmp_path/'comm_check.py'
    script.write_text(COMM_CHECK)
    p = subprocess.run([TORCHRUN, '--standalone', '--nproc_per_node', '2', str(script), str(tmp_path)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(f.name for f in tmp_path.glob('ok-*')) == ['ok-0', 'ok-1'], p.stdout + p.stderr


def simulated(cfg, run_dir=None, run_cls=DiLoCo) -> DiLoCo:
    torch.set_num_threads(1)   # as torchrun sets OMP_NUM_THREADS=1 for each process
    run = run_cls(cfg, run_dir=run_dir, progress=False)
    run.fit()
    return run


def simulated_theta(cfg): return simulated(cfg).theta


def compression_log(run_dir) -> torch.Tensor:
    "Each round's compression ratio and error-feedback norms, as a run logged them (nan for None)."
    return torch.tensor([[math.nan if v is None else v for v in (r['compression_ratio'], *r['ef_norm'])]
                         for r in RunRecord(run_dir).metrics('round')])


@pytest.mark.parametrize('ablation', [{}, {'compress': 'int8', 'prune': 0.5, 'drop_prob': 0.3, 'outer_opt': 'adam', 'outer_lr': 0.1},
                                      {'collective': 'all_reduce', 'compress': 'bf16', 'drop_prob': 0.3},
                                      {'topk': 0.02, 'compress': 'int2', 'error_feedback': 1.0, 'drop_prob': 0.3}])
def test_two_processes_equal_the_simulator(tmp_path, torchrun, ablation):
    cfg = DiLoCoConfig(**SMALL, steps=20, H=5, **ablation)
    p = torchrun(cfg, tmp_path/'run')
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert '[dist]' in out, out
    theta = RunRecord(tmp_path/'run').load_checkpoint()['theta']
    torch.testing.assert_close(theta, simulated(cfg, tmp_path/'sim').theta, rtol=1e-5, atol=1e-6)
    # the other process's error-feedback norms reach the main one's rows through the telemetry
    torch.testing.assert_close(compression_log(tmp_path/'run'), compression_log(tmp_path/'sim'), rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize('ablation', [{'collective': 'all_reduce', 'compress': 'bf16'},
                                      {'overlap_outer': 'delayed', 'topk': 0.02, 'compress': 'int2', 'error_feedback': 1.0}])
def test_eager_two_processes_equal_the_simulator(tmp_path, torchrun, ablation):
    "Overlapped outer steps (each worker its own global copy under eager) across two processes: the simulator's parameters."
    cfg = EagerConfig(**SMALL, steps=20, H=5, outer_lr=0.35, **ablation)
    p = torchrun(cfg, tmp_path/'run', kind='eager')
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    theta = RunRecord(tmp_path/'run').load_checkpoint()['theta']
    torch.testing.assert_close(theta, simulated(cfg, run_cls=EagerDiLoCo).theta, rtol=1e-5, atol=1e-6)


def worker_pids(run_dir, rank: int | None = None) -> list[int]:
    "PIDs of the torchrun worker processes (of `rank`, or all) for the run in `run_dir`."
    pids = []
    for proc in Path('/proc').iterdir():
        try:
            cmd = (proc/'cmdline').read_bytes().split(b'\0')
            env = (proc/'environ').read_bytes().split(b'\0')
        except (OSError, ValueError):
            continue
        if str(run_dir).encode() in cmd and b'lowcomm.cli' in cmd and (rank is None or f'RANK={rank}'.encode() in env):
            pids.append(int(proc.name))
    return pids


def kill_job(p, run_dir, timeout: float = 30):
    "SIGKILL a torchrun job's workers (which run in sessions of their own), then torchrun; wait until all are gone."
    for pid in worker_pids(run_dir):
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.time() + timeout
    while worker_pids(run_dir) and time.time() < deadline: time.sleep(0.05)


def wait_for_round(p, rec: RunRecord, round: int, timeout: float = 120):
    "Wait until the run's latest checkpoint is of `round` or later, while `p` runs."
    deadline = time.time() + timeout
    while len(rec.checkpoints()) == 0 or rec.load_checkpoint()['round'] < round:
        assert p.poll() is None and time.time() < deadline, p.stdout.read() if p.poll() is not None else 'timed out'
        time.sleep(0.05)


def test_killed_worker_resumes_from_last_round(tmp_path, torchrun):
    cfg = DiLoCoConfig(**SMALL, steps=120, H=10)
    run_dir = tmp_path/'run'
    p = torchrun(cfg, run_dir, '--max-restarts', '2')
    rec = RunRecord(run_dir)
    wait_for_round(p, rec, 3)
    pids = worker_pids(run_dir, rank=1)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    killed_at = time.time()
    saved = {r['round']: r['time'] for r in rec.metrics('round')}
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    rounds = rec.metrics('round')
    assert [r['round'] for r in rounds] == list(range(1, cfg.rounds + 1))   # every round once
    assert rec.status['state'] == 'finished'
    redone = [r['round'] for r in rounds if r['time'] > killed_at]
    assert redone and redone[-1] == cfg.rounds and len(redone) < cfg.rounds, redone    # restarted mid-run...
    kept = [r for r in saved if r < redone[0]]
    assert kept and all(saved[r] == next(x['time'] for x in rounds if x['round'] == r) for r in kept)  # ...keeping completed rounds
    torch.testing.assert_close(rec.load_checkpoint()['theta'], simulated_theta(cfg), rtol=1e-5, atol=1e-6)


def test_lost_machine_resumes_on_fewer_processes(tmp_path, torchrun):
    "The whole job dies after round 2 or later; it resumes with one process running both workers, and ends where the simulator does."
    cfg = DiLoCoConfig(**SMALL, steps=200, H=10)
    run_dir = tmp_path/'run'
    p = torchrun(cfg, run_dir)
    rec = RunRecord(run_dir)
    wait_for_round(p, rec, 2)
    kill_job(p, run_dir)
    done = rec.load_checkpoint()['round']
    assert done < cfg.rounds, 'the run finished before it was killed'
    out, _ = torchrun(cfg, run_dir, nproc=1).communicate(timeout=300)
    assert rec.status['state'] == 'finished', out
    assert [r['round'] for r in rec.metrics('round')] == list(range(1, cfg.rounds + 1))
    assert [(e['round'], e['processes']) for e in rec.metrics('start')] == [(0, 2), (done, 1)]
    torch.testing.assert_close(rec.load_checkpoint()['theta'], simulated_theta(cfg), rtol=1e-5, atol=1e-6)

