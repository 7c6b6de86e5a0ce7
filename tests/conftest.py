"Shared fixtures of the browser tests: headless Chromium driven by Playwright, and a folder for screenshots."
import os, shutil
from pathlib import Path

import pytest

# Flags that keep Chromium from reaching for the network (on a closed network it floods it otherwise).
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']


def chromium_path() -> str | None:
    "Debian's Chromium (or $LOWCOMM_CHROMIUM): Playwright's own browser download is not used."
    for p in (os.environ.get('LOWCOMM_CHROMIUM'), shutil.which('chromium'), '/usr/bin/chromium', shutil.which('chromium-browser')):
        if p and Path(p).exists(): return p
    return None


@pytest.fixture(scope='session')
def browser():
    "A headless Chromium for the whole session."
    exe = chromium_path()
    if exe is None:
        # CI installs it (tools/test.sh), so there a missing Chromium is a failure, elsewhere a skip
        (pytest.fail if os.environ.get('CI') else pytest.skip)(
            "no Chromium found (looked for $LOWCOMM_CHROMIUM, chromium on the PATH, /usr/bin/chromium): "
            "install Debian's `chromium` package (tools/test.sh does)")
    from playwright import sync_api   # a dev dependency
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope='session')
def artifacts() -> Path:
    "Where the browser tests keep screenshots: $LOWCOMM_ARTIFACTS or tests/artifacts (gitignored)."
    d = Path(os.environ.get('LOWCOMM_ARTIFACTS') or Path(__file__).parent/'artifacts')
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope='session')
def docs_site(tmp_path_factory) -> Path:
    "The docs site, built once offline from nbs/ and the executed papers, for every docs test."
    from nbdev.config import get_config
    from lowcomm.docs import build_docs
    return build_docs(tmp_path_factory.mktemp('docs')/'site', nbs=get_config().path('nbs_path'), quarto=False)
