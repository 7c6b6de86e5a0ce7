"""The dashboard of a torchft job: its folder holds one run record per replica (`replica-<i>`), and the DiLoCo view
adds a quorum panel (quorum size per round, workers missing, heals, retried exchanges, the stall) fed by every
replica's rows. Fast: the records are synthetic (`lowcomm.dashboard.measure.synthetic_ft_job`), in the exact shape
of a real job's, which `REAL_ROW` pins down."""
import json

from _cli import lowcomm
from lowcomm.core import RunRecord
from lowcomm.dashboard.live import dashboard_for
from lowcomm.dashboard.measure import _synthetic_ft_round, synthetic_ft_job

# A real round row (replica 1 of `lowcomm chaos diloco --json --out DIR`, DIR/faulty/replica-1: killed in round 3,
# back and healed in round 8), its inner-loss curves cut to 3 points.
REAL_ROW = {'event': 'round', 'time': 1795887030.3855324, 'round': 8, 'step': 800, 'active': [0], 'sent': [0],
            'inner_loss': [[2.4031982421875, 2.3980644941329956, 2.402801513671875], None],
            'outer_grad_norm': [1.3009967803955078, None], 'cosine': [[1.0]], 'bytes_raw': 482560, 'bytes_sent': 482560,
            'sim_comm_time': 0.0, 'replica': 1, 'quorum': [0, 1], 'attempts': 1, 'healed_from': 2,
            'quorum_s': 0.6018817000003764, 'fingerprint': '27ab2ee193ac', 'eval_loss': 2.3982908725738525,
            'wall_time': 0.612961825999264}


def by_name(panel) -> dict:
    return {t.name: t for t in panel.widget.data}


def test_synthetic_rows_are_shaped_like_real_ones(tmp_path):
    "The synthetic job's rows have the real rows' fields, in their order, with their types."
    recs = synthetic_ft_job(tmp_path/'job', rounds=8, workers=2, H=10, away={1: range(3, 8)})
    row = recs[1].metrics('round')[-1]
    assert list(row) == list(REAL_ROW)
    assert {k: type(v) for k, v in row.items()} == {k: type(v) for k, v in REAL_ROW.items()}
    assert [r['event'] for r in recs[1].metrics() if r['event'] == 'start'] == ['start']   # it restarted before round 8
    assert (row['round'], row['quorum'], row['active'], row['healed_from']) == (8, [0, 1], [0], 2)


def test_quorum_panel_of_a_job(tmp_path):
    "The chaos default scenario: replica 1 killed in round 3, healed in round 8; the job's folder opens the dashboard."
    job = tmp_path/'job'
    synthetic_ft_job(job, rounds=8, workers=2, H=10, away={1: range(3, 8)})
    dash = dashboard_for(job, follow=False)
    assert dash.title.value == '<b>diloco k=2 H=10 none (job/replica-0) · 2 replicas</b>'
    quorum = by_name(dash.panels[4])
    assert list(quorum['quorum size'].y) == [2, 2, 1, 1, 1, 1, 1, 2]
    assert list(quorum['workers (2)'].y) == [2, 2]
    assert quorum['worker missing'].x == (3, 4, 5, 6, 7)
    assert quorum['replica healed'].text == ('round 8: replica 1 healed from a peer (it was at round 2)',)
    assert list(quorum['stall (s)'].y) == [0.01, 0.01, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01]   # the returnee's own wait left out
    assert sorted(dash.rounds) == list(range(1, 9))
    assert 'replica 0 · quorum [0, 1]' in dash.panels[5].widget.children[0].value


def test_rounds_the_shown_replica_missed(tmp_path):
    "Replica 0 (the one shown) away in rounds 3-4: the quorum panel still has them, from replica 1's rows, live."
    job = tmp_path/'job'
    recs = synthetic_ft_job(job, rounds=6, workers=2, H=10, away={0: range(3, 5)}, logged=2)
    dash = dashboard_for(job, follow=False)
    for t in range(3, 7):
        _synthetic_ft_round(recs, t, 10, {0: range(3, 5)})
        dash.update()
    quorum = by_name(dash.panels[4])
    assert list(quorum['quorum size'].x) == [1, 2, 3, 4, 5, 6] and list(quorum['quorum size'].y) == [2, 2, 1, 1, 2, 2]
    assert quorum['replica healed'].text == ('round 5: replica 0 healed from a peer (it was at round 2)',)
    assert sorted(dash.rounds) == [1, 2, 5, 6]


def test_plain_diloco_has_no_quorum_panel(tmp_path):
    rec = RunRecord.create(tmp_path/'run', {'workers': 2, 'H': 10, 'compress': 'none'}, kind='diloco')
    rec.log('round', **{k: v for k, v in REAL_ROW.items() if k not in ('event', 'replica', 'quorum', 'attempts', 'healed_from',
                                                                      'quorum_s', 'fingerprint')})
    dash = dashboard_for(rec.path, follow=False)
    assert [p.widget.layout.title.text for p in dash.panels[:4]] == ['inner loss per worker · global eval loss', 'outer-gradient norm',
                                                                      'cosine of outer gradients', 'communication (cumulative)']
    assert len(dash.panels) == 5


def test_cli_dashboard_of_a_job(tmp_path):
    "`lowcomm dashboard JOB` writes the job's dashboard notebook; a folder that is neither a record nor a job: one line, exit 2."
    synthetic_ft_job(tmp_path/'job', rounds=2, workers=2, H=10)
    out = lowcomm('dashboard', tmp_path/'job', '--no_launch', cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    cell = json.loads((tmp_path/'job'/'dashboard.ipynb').read_text())['cells'][1]['source']
    assert str((tmp_path/'job').resolve()) in cell, cell
    out = lowcomm('dashboard', tmp_path, '--no_launch', cwd=tmp_path, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().count('\n') == 0, out.stderr
    assert f"lowcomm dashboard: {tmp_path} is neither a run record (no config.json) nor a torchft job's folder" in out.stderr, out.stderr
