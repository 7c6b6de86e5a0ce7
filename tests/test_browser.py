"""Live dashboards in a real browser: JupyterLab on loopback, headless Chromium driven by Playwright.

1. A notebook trains a DiLoCo run on a thread of its kernel and shows `live(run)`: the dashboard renders
   (plotly graphs), updates while the run goes, and its Pause / Stop buttons pause and stop the run.
2. `launch_dashboard` (what `lowcomm dashboard RUN_DIR` calls) opens the dashboard of a run that another
   process is writing: it follows it.
3. The dashboard of a torchft job's folder (one record per replica) draws its quorum panel, failures and heals included.
Screenshots go to tests/artifacts/ (or $LOWCOMM_ARTIFACTS), and the time from running the cell to every panel
drawn to dashboard-render.json there (measured and printed, not asserted: these machines are noisy)."""
import json, os, re, subprocess, sys, time
from pathlib import Path

import pytest

from lowcomm.dashboard.launch import dashboard_notebook, launch_dashboard
from lowcomm.dashboard.measure import synthetic_ft_job

PANEL = '.jp-NotebookPanel:not(.lm-mod-hidden)'   # the notebook on show (the workspace may hold others)
LONG = 180_000      # ms: generous, the machine may be busy; nothing here asserts on speed

# a run long enough that it is still going when the browser looks (tests stop it or kill it)
RUN_CFG = "DiLoCoConfig(model='tiny', max_docs=40, batch_size=4, seq_len=32, steps=3000, H=10, workers=2)"

LIVE_CELL = f"""\
from pathlib import Path
from lowcomm.distributed.diloco import DiLoCo, DiLoCoConfig
from lowcomm.dashboard.live import live
run = DiLoCo({RUN_CFG}, run_dir=Path('live_run'), progress=False)
dash = live(run, interval=0.3)
dash"""

PROC_SCRIPT = f"""\
import sys
from lowcomm.distributed.diloco import DiLoCo, DiLoCoConfig
DiLoCo({RUN_CFG}, run_dir=sys.argv[1], progress=False).fit()"""


def notebook(path: Path, source: str) -> Path:
    nb = {'cells': [{'cell_type': 'code', 'id': 'live', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': source}],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}},
          'nbformat': 4, 'nbformat_minor': 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture(scope='module')
def lab(tmp_path_factory, browser):
    "JupyterLab on 127.0.0.1 started by `launch_dashboard` on a folder holding the test notebooks (fresh settings and workspaces)."
    root = tmp_path_factory.mktemp('lab')
    with pytest.MonkeyPatch.context() as mp:
        for var in ('JUPYTERLAB_WORKSPACES_DIR', 'JUPYTERLAB_SETTINGS_DIR', 'JUPYTER_RUNTIME_DIR'):
            mp.setenv(var, str(root/'.jupyter'/var.lower()))
        mp.setenv('OMP_NUM_THREADS', '1')
        launched = launch_dashboard(root/'proc_run', notebook=root/'follow.ipynb', wait=False)
    notebook(root/'live.ipynb', LIVE_CELL)
    yield launched, root
    launched.stop()


RENDER_CLOCK = f"""n => {{
  const t0 = performance.now(), seen = {{}};
  const tick = () => {{
    if (seen.output === undefined && /\\[[0-9]+\\]/.test(document.querySelector('{PANEL} .jp-CodeCell .jp-InputPrompt')?.innerText || ''))
      seen.output = performance.now();                                  // the cell has run: its widget is on its way
    const grid = document.querySelector('{PANEL} .widget-gridbox');
    const panels = grid ? [...grid.children] : [];
    if (panels.length >= n && panels.every(p => p.querySelector('.main-svg'))) {{
      window.__lowcommRender = {{output_s: (seen.output - t0) / 1000, drawn_s: (performance.now() - t0) / 1000}};
    }} else setTimeout(tick, 20);
  }};
  window.__lowcommRender = null; tick();
}}"""


def open_and_run(browser, url: str, n_panels: int = 5):
    "Open a notebook in JupyterLab, wait for its kernel, and Run All Cells from the menu, starting a clock of its `n_panels` panels."
    page = browser.new_page(viewport={'width': 1500, 'height': 1300})
    page.set_default_timeout(LONG)
    page.goto(url, wait_until='domcontentloaded')
    page.wait_for_selector('.jp-NotebookPanel .jp-Cell')
    page.wait_for_function("() => /\\|\\s*Idle/.test(document.querySelector('.jp-StatusBar-Widget')?.parentElement?.innerText || '')")
    page.locator(f'{PANEL} .jp-CodeCell .jp-InputPrompt').first.click()      # the notebook is the current widget
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()
    page.evaluate(RENDER_CLOCK, n_panels)
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()
    page.wait_for_function(f"() => /\\[[*0-9]+\\]/.test(document.querySelector('{PANEL} .jp-CodeCell .jp-InputPrompt')?.innerText || '')")  # queued or ran
    return page


EVAL_POINTS = f"""() => {{
  for (const gd of document.querySelectorAll('{PANEL} .js-plotly-plot')) {{
    const t = (gd._fullData || []).find(t => t.name === 'global (eval)');
    if (t) return t._length ?? (t.x ? t.x.length : 0);
  }}
  return -1;
}}"""


def wait_for_dashboard(page, n_plots: int = 5) -> int:
    "Wait until the dashboard's plotly graphs are drawn with at least one round; the global eval trace's point count."
    page.wait_for_function(f"() => document.querySelectorAll('{PANEL} .js-plotly-plot').length >= {n_plots}")
    page.wait_for_function(f"() => ({EVAL_POINTS})() >= 1")
    return page.evaluate(EVAL_POINTS)


def wait_for_more(page, n: int) -> int:
    "Wait until the eval trace has more than `n` points (the dashboard follows the run); the new count."
    page.wait_for_function(f"n => ({EVAL_POINTS})() > n", arg=n)
    return page.evaluate(EVAL_POINTS)


def render_time(page, artifacts, name: str) -> dict:
    "Seconds from Run All Cells to the dashboard's output appearing and to every panel drawn: printed, and kept in dashboard-render.json."
    page.wait_for_function("() => window.__lowcommRender")
    t = page.evaluate("() => window.__lowcommRender")
    print(f"\n{name}: dashboard output after {t['output_s']:.2f} s, every panel drawn after {t['drawn_s']:.2f} s "
          f"({t['drawn_s'] - t['output_s']:.2f} s after the output appeared)")
    path = artifacts/'dashboard-render.json'
    times = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**times, name: {**t, 'output_to_drawn_s': t['drawn_s'] - t['output_s']}}, indent=1))
    return t


def status_text(page) -> str:
    return page.locator('.widget-html-content').filter(has_text='record:').first.inner_text()


def test_live_dashboard_in_jupyterlab(lab, browser, artifacts):
    launched, root = lab
    page = open_and_run(browser, launched.url.replace('/lab/tree/follow.ipynb', '/lab/workspaces/live/tree/live.ipynb'))  # its own workspace
    try:
        render_time(page, artifacts, 'live')
        n0 = wait_for_dashboard(page)
        n1 = wait_for_more(page, n0)
        assert n1 > n0
        slider = page.locator(f'{PANEL} .widget-slider .widget-readout').first
        page.wait_for_function("el => Number(el.innerText) >= 2", arg=slider.element_handle())
        page.locator(PANEL).get_by_role('button', name='Pause').click()
        page.wait_for_function("() => document.body.innerText.includes('paused (record')")
        n_paused = page.evaluate(EVAL_POINTS)
        page.wait_for_timeout(2000)                           # a paused run logs nothing
        assert page.evaluate(EVAL_POINTS) == n_paused, status_text(page)
        page.screenshot(path=str(artifacts/'dashboard-live.png'), full_page=True)
        page.locator(PANEL).get_by_role('button', name='Stop').click()
        page.wait_for_function("() => document.body.innerText.includes('stopped (record: paused')")
        status = json.loads((root/'live_run'/'status.json').read_text())
        assert status['state'] == 'paused' and status['round'] >= n_paused, status
    finally:
        page.close()


def test_launched_dashboard_follows_another_process(lab, browser, artifacts):
    launched, root = lab
    run_dir = root/'proc_run'
    proc = subprocess.Popen([sys.executable, '-c', PROC_SCRIPT, str(run_dir)], env={**os.environ, 'OMP_NUM_THREADS': '1'})
    page = None
    try:
        t0 = time.monotonic()
        while not (run_dir/'config.json').exists():           # the notebook opens an existing run record
            assert proc.poll() is None, f"the training process exited with {proc.returncode}"
            assert time.monotonic() - t0 < LONG / 1000, "the training process wrote no run record"
            time.sleep(0.5)
        page = open_and_run(browser, launched.url)
        render_time(page, artifacts, 'follow')
        n0 = wait_for_dashboard(page)
        n1 = wait_for_more(page, n0)
        assert n1 > n0 and proc.poll() is None
        page.screenshot(path=str(artifacts/'dashboard-follow.png'), full_page=True)
    finally:
        proc.kill(); proc.wait()
        if page is not None: page.close()


TRACE_POINTS = f"""name => {{
  for (const gd of document.querySelectorAll('{PANEL} .js-plotly-plot')) {{
    const t = (gd._fullData || []).find(t => t.name === name);
    if (t) return t._length ?? (t.x ? t.x.length : 0);
  }}
  return -1;
}}"""


def test_torchft_job_dashboard(lab, browser, artifacts):
    "A job's folder: replica 1 away in rounds 3-7 and healed in round 8 (synthetic records shaped like a real job's)."
    launched, root = lab
    synthetic_ft_job(root/'ft_job', rounds=8, workers=2, H=10, away={1: range(3, 8)})
    dashboard_notebook(root/'ft_job', root/'ft.ipynb')
    page = open_and_run(browser, launched.url.replace('/lab/tree/follow.ipynb', '/lab/workspaces/ft/tree/ft.ipynb'), n_panels=6)
    try:
        render_time(page, artifacts, 'torchft job')
        page.wait_for_function(f"() => ({TRACE_POINTS})('replica healed') === 1")
        assert page.evaluate(TRACE_POINTS, 'worker missing') == 5 and page.evaluate(TRACE_POINTS, 'quorum size') == 8
        page.screenshot(path=str(artifacts/'dashboard-torchft-job.png'), full_page=True)
    finally:
        page.close()
