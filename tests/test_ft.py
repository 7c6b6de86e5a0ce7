"Fault-tolerant DiLoCo on torchft across real processes on loopback: kills, healing, replay, and the errors that must not hang."
import json, os, shutil, signal, socket, time

import pytest
import torch

from lowcomm.core import RunRecord
from lowcomm.distributed.diloco import DiLoCo
from lowcomm.distributed.chaos import chaos_config
from lowcomm.distributed.ft import final_state, lighthouse, replay, torch_threads
from _cli import lowcomm
from test_dist import torchrun, worker_pids   # noqa: F401 (torchrun: a fixture)

JOB = dict(workers=3, rounds=16, H=40)          # three replicas; replica 2 is killed mid-round 3 and restarted 2 s later:
KILL = '2@2.5+2'                                # back after the survivors finished round 3 alone (1 s heartbeat), before the end


@pytest.fixture(scope='module')
def chaos_run(tmp_path_factory):
    "`lowcomm chaos diloco` on three replicas: its JSON figures and its folder."
    out = tmp_path_factory.mktemp('chaos')/'job'
    flags = [a for k, v in JOB.items() for a in (f'--{k}', v)]
    r = lowcomm('chaos', 'diloco', *flags, '--kill', KILL, '--json', '--out', out, cwd=out.parent, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout), out


def rounds(run_dir, replica):
    return RunRecord(run_dir/f'replica-{replica}').metrics('round')


def test_survivors_continue_and_the_returned_replica_heals(chaos_run):
    result, out = chaos_run
    assert (result['kills'], result['restarts'], result['rounds_lost'], result['rounds_discarded']) == (1, 1, 0, 0), result
    assert result['survivors_continued'] and result['healed'] and result['replay_bitwise'], result
    assert result['stall_s']['max'] > 0 and 0 < result['goodput'] and result['final_ppl_ratio'] > 0


def test_every_round_logged_once_per_replica_that_took_part(chaos_run):
    _, out = chaos_run
    faulty, n = out/'faulty', chaos_config(JOB).rounds
    for survivor in (0, 1):
        assert [r['round'] for r in rounds(faulty, survivor)] == list(range(1, n + 1))
    back = rounds(faulty, 2)
    done = [r['round'] for r in back]
    assert done[:2] == [1, 2] and len(done) == len(set(done)) and done == sorted(done), done
    gap = done[2]                                      # the first round after its restart: the one it healed in
    assert gap > 3 and done[2:] == list(range(gap, n + 1)), done
    healed = back[2]
    assert healed['healed_from'] == 2 and 2 not in healed['active'] and healed['quorum'] == [0, 1, 2], healed
    missing = [r for r in rounds(faulty, 0) if 3 <= r['round'] < gap]
    assert missing and all(r['quorum'] == [0, 1] for r in missing)
    by_round = {r['round']: r['fingerprint'] for r in rounds(faulty, 0)}
    assert all(r['fingerprint'] == by_round[r['round']] for r in back)   # bitwise its peers' state, every round


def test_a_job_without_failures_is_the_simulators_run(chaos_run):
    _, out = chaos_run
    with torch_threads(1):                             # as the replicas ran: float results depend on it
        sim = DiLoCo(chaos_config(JOB), progress=False)
        sim.fit()
    for i in range(JOB['workers']):
        assert torch.equal(final_state(out/'clean', i)['theta'], sim.theta), i


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def replica(tmp_path, *flags):
    "One torchft replica of a small job, to completion or failure (a hang fails the test through the timeout)."
    return lowcomm('diloco', '--run_dir', tmp_path/'job', '--engine', 'torchft', '--model', 'tiny', '--max_docs', 40,
                   '--steps', 20, '--H', 10, '--workers', 2, *flags, cwd=tmp_path, timeout=120)


def test_missing_lighthouse_is_a_one_line_error(tmp_path):
    address = f'http://127.0.0.1:{free_port()}'
    r = replica(tmp_path, '--lighthouse', address, '--timeout', 2)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert f"lowcomm diloco: lighthouse = '{address}' is not reachable within 2 s" in r.stderr


def test_a_quorum_that_never_forms_is_a_one_line_error(tmp_path):
    server = lighthouse('127.0.0.1:0', min_replicas=2)          # the other replica never comes
    try: r = replica(tmp_path, '--lighthouse', server.address(), '--timeout', 3)
    finally: server.shutdown()
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert 'lowcomm diloco: no quorum formed within 3 s' in r.stderr


def test_a_replica_back_after_the_job_ended_stops_instead_of_forking(tmp_path, chaos_run):
    _, out = chaos_run
    n, job = chaos_config(JOB).rounds, tmp_path/'job'
    shutil.copytree(out/'faulty'/'replica-0', job/'replica-0')
    (job/'replica-0'/'checkpoints'/f'step-{n:08d}.pt').unlink()          # as if killed during the last round
    cfg = json.loads((job/'replica-0'/'config.json').read_text())
    flags = [a for k, v in cfg.items() if k not in ('kind', 'replica') for a in (f'--{k}', v)]
    server = lighthouse('127.0.0.1:0')
    try: r = lowcomm('diloco', '--run_dir', job, *flags, '--replica', 0, '--lighthouse', server.address(), '--timeout', 2,
                     cwd=tmp_path, timeout=120)
    finally: server.shutdown()
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert f'lowcomm diloco: replica 0 came back at round {n - 1}, but no other replica joined within 2 s' in r.stderr


def test_torchrun_restarts_a_crashed_replica_which_heals(tmp_path, torchrun):
    "One torchrun per replica (a replica group of one) with --max-restarts: SIGKILL replica 1's worker mid-round, torchrun restarts it, it heals."
    server = lighthouse('127.0.0.1:0')
    cfg = chaos_config({'rounds': 8}).replace(engine='torchft', lighthouse=server.address())
    job = tmp_path/'job'
    try:
        procs = [torchrun(cfg.replace(replica=i), job, '--max-restarts', '2', nproc=1) for i in (0, 1)]
        rec = RunRecord(job/'replica-1')
        deadline = time.time() + 120
        while not (rec.metrics_path.exists() and len(rec.metrics('round')) >= 2):
            assert time.time() < deadline and all(p.poll() is None for p in procs), 'replica 1 never finished round 2'
            time.sleep(0.05)
        time.sleep(0.5)                                                       # into round 3
        (victim,) = [pid for pid in worker_pids(job, rank=0) if b'--replica\x001\x00' in open(f'/proc/{pid}/cmdline', 'rb').read()]
        os.kill(victim, signal.SIGKILL)
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally: server.shutdown()
    assert [p.returncode for p in procs] == [0, 0], outs[1][-3000:]
    back = [r for r in rec.metrics('round') if r['round'] > 2]
    first = back[0]                          # torchrun restarts at once: it may be back in time for round 3, with nothing to heal
    assert 1 not in first['active'] and first['healed_from'] == (2 if first['round'] > 3 else None) and back[-1]['round'] == cfg.rounds, back
    assert [(e['round'] > 0) for e in rec.metrics('start')] == [False, True]   # started once more, from its checkpoint
    with torch_threads(1):
        assert torch.equal(replay(job).theta, final_state(job, 0)['theta'])
