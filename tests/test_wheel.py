"The package as users get it: a wheel built from pyproject.toml holds every subpackage, and imports outside the checkout."
import os, shutil, subprocess, sys, zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_subpackage(tmp_path):
    src = tmp_path/'src'                                    # build from a copy: the checkout stays clean
    src.mkdir()
    for f in ('pyproject.toml', 'README.md'): shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'lowcomm', src/'lowcomm', ignore=shutil.ignore_patterns('__pycache__'))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    subprocess.run([*pip, 'wheel', '--no-deps', '--no-build-isolation', '-w', tmp_path/'dist', src], check=True)
    wheel = next((tmp_path/'dist').glob('lowcomm-*.whl'))
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in (ROOT/'lowcomm').rglob('__init__.py'))
    assert len(packages) >= 3, packages                    # lowcomm, lowcomm.dashboard, lowcomm.distributed, ...
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/'lowcomm').rglob('*.py'))
    missing = set(modules) - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"the wheel lacks {sorted(missing)}"

    site = tmp_path/'site'
    subprocess.run([*pip, 'install', '--no-deps', '--target', site, wheel], check=True)
    names = [m.removesuffix('.py').replace('/', '.').removesuffix('.__init__') for m in modules]
    code = ("import importlib, lowcomm; assert lowcomm.__file__.startswith(%r), lowcomm.__file__\n"
            "for m in %r: importlib.import_module(m)\n"
            "from lowcomm.core import RUN_KINDS, load_families; load_families(); print(sorted(RUN_KINDS))") % (str(site), names)
    env = {**os.environ, 'PYTHONPATH': str(site)}
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert 'diloco' in r.stdout and 'train' in r.stdout, r.stdout
