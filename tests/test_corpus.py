"Your own data end to end, as a user runs it: `lowcomm corpus` and `lowcomm train --corpus` on text files, folders and JSON lines."
import json, random
from pathlib import Path

import pytest

from _cli import lowcomm
from lowcomm.data import cut_text

SMALL = ['--model', 'tiny', '--batch_size', '4', '--seq_len', '32', '--eval_every', '2', '--eval_batches', '1',
         '--log_every', '2', '--device', 'cpu']
TIMEOUT = 180
WORDS = 'the of and to in is was he that it for as with his on be at by had not are but from or have an they which one you'.split()


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): monkeypatch.setenv(var, '1')


def prose(seed: int, paragraphs: int) -> str:
    "Paragraphs of random words, separated by blank lines (about 300 characters each)."
    r = random.Random(seed)
    return '\n\n'.join('\n'.join(' '.join(r.choice(WORDS) for _ in range(12)) for _ in range(5)) for _ in range(paragraphs)) + '\n'


@pytest.fixture
def plays(tmp_path) -> Path:
    "A folder with one subfolder per kind of play, 12 files in all."
    for i in range(12):
        kind = tmp_path/'plays'/['comedies', 'histories', 'tragedies'][i % 3]
        kind.mkdir(parents=True, exist_ok=True)
        (kind/f'play{i:02d}.txt').write_text(prose(i, 3))
    return tmp_path/'plays'


def corpus_json(*args, cwd) -> dict:
    r = lowcomm('corpus', *args, '--json', cwd=cwd, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def assert_one_clear_line(r, command: str, *parts, after_loading=False):
    "Exit status 2 and one `lowcomm COMMAND: ...` line on stderr that holds each of `parts` (after the corpus's log line, if loaded)."
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 or after_loading and len(lines) == 2 and lines[0].startswith('corpus '), r.stderr
    assert lines[-1].startswith(f'lowcomm {command}: '), r.stderr
    for p in parts: assert str(p) in lines[-1], (p, lines[-1])


# ---------------------------------------------------------------------------------------------------------
# one big text file

def test_train_on_one_text_file(tmp_path):
    book = tmp_path/'book.txt'; book.write_text(prose(0, 120))   # about 36k characters
    r = lowcomm('train', '--run_dir', tmp_path/'run', '--corpus', book, '--steps', '4', *SMALL, cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'after 4 steps' in r.stdout, r.stdout


def test_one_text_file_is_cut_into_documents(tmp_path):
    book = tmp_path/'book.txt'; text = prose(0, 120); book.write_text(text)
    d = corpus_json(book, cwd=tmp_path)
    names = [f'book.txt#{i:04d}' for i in range(d['documents'])]
    assert (d['documents'], d['characters']) == (len(cut_text(text)), len(text)), d
    assert d['validation']['names'] == names[-1:] and d['train']['documents'] == len(names) - 1, d
    assert d['tokens'] == len(text) + len(names)                                          # bytes plus one end-of-text each
    (tmp_path/'alone').mkdir(); (tmp_path/'alone'/'book.txt').write_text(text)           # a folder holding one file: the same
    assert corpus_json(tmp_path/'alone', cwd=tmp_path)['validation'] == d['validation']


def test_text_without_blank_lines(tmp_path):
    (tmp_path/'log.txt').write_text(''.join(f'line {i:04d} ' + 'x' * 39 + '\n' for i in range(400)))   # 400 lines of 50
    d = corpus_json(tmp_path/'log.txt', cwd=tmp_path)
    assert (d['documents'], d['characters']) == (5, 20_000), d


# ---------------------------------------------------------------------------------------------------------
# a folder: the split does not depend on how its path is spelled

def test_corpus_summary(plays):
    r = lowcomm('corpus', 'plays', cwd=plays.parent, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith('corpus plays: 12 documents, ') and '(byte tokenizer, vocabulary 257)' in lines[0], r.stdout
    assert lines[1].startswith('  3 domains: ') and 'comedies (4 documents' in lines[1], r.stdout
    assert lines[2].startswith('  train: 11 documents') and lines[3].startswith('  validation: 1 document'), r.stdout


def test_split_does_not_depend_on_the_spelling(plays):
    (plays.parent/'link').symlink_to(plays)
    cwd = plays.parent
    spellings = ['plays', './plays/', str(plays), 'link', str(cwd/'link') + '/']
    described = [corpus_json(s, cwd=cwd) for s in spellings]
    assert len({json.dumps(d['validation']) for d in described}) == 1, [d['validation'] for d in described]
    d = described[0]
    assert (d['documents'], d['train']['documents'] + d['validation']['documents']) == (12, 12)
    assert {k: v['documents'] for k, v in d['domains'].items()} == {'comedies': 4, 'histories': 4, 'tragedies': 4}
    assert all(n.count('/') == 1 and n.endswith('.txt') for n in d['validation']['names']), d   # 'tragedies/play11.txt'
    # from another folder, too
    assert corpus_json(plays, cwd=plays/'comedies')['validation'] == d['validation']


def test_val_frac_and_val_corpus(plays, tmp_path):
    half = corpus_json(plays, '--val_frac', '0.5', cwd=tmp_path)
    default = corpus_json(plays, cwd=tmp_path)
    assert half['validation']['documents'] > default['validation']['documents'] and half['documents'] == 12, half
    other = tmp_path/'other'; other.mkdir()
    for i in range(2): (other/f'extra{i}.txt').write_text(prose(100 + i, 2))
    d = corpus_json(plays, '--val_corpus', other, cwd=tmp_path)
    assert d['validation']['names'] == ['extra0.txt', 'extra1.txt'] and d['train']['documents'] == 12, d
    assert d['val_corpus'] == str(other)


def test_train_says_what_was_held_out(plays, tmp_path):
    "The run's log names the held-out documents (logger `lowcomm.data`, shown by the CLI)."
    r = lowcomm('train', '--run_dir', tmp_path/'run', '--corpus', plays, '--steps', '2', *SMALL, cwd=tmp_path, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    held = corpus_json(plays, cwd=tmp_path)['validation']['names']
    line = next((l for l in r.stderr.splitlines() if 'held out' in l), None)
    assert line is not None, r.stderr[-3000:]
    assert f'corpus {plays}: 12 documents (3 domains)' in line and f'held out 1 for validation: {held[0]}' in line, line


def test_domain_shards_need_a_folder_per_domain(tmp_path):
    flat = tmp_path/'flat'; flat.mkdir()
    for i in range(4): (flat/f'part{i}.txt').write_text(prose(i, 3))
    r = lowcomm('diloco', '--run_dir', tmp_path/'run', '--corpus', flat, '--shards', 'domain', '--workers', '2', '--steps', '2', '--H', '2',
                *SMALL, cwd=tmp_path, timeout=TIMEOUT)
    assert_one_clear_line(r, 'diloco', 'cannot make k = 2 shards from 1 domains', '(domains: flat)',
                          "A text file's domain is the folder holding it", after_loading=True)


# ---------------------------------------------------------------------------------------------------------
# bad input: exit 2 and one line that names the path and what is expected

def _bad(tmp_path, case) -> tuple[Path, list]:
    "A corpus path for `case`, and the parts its error must hold."
    p = tmp_path/case
    if case == 'empty.txt': p.write_text('\n \n'); return p, [p, 'is empty: expected text']
    if case == 'binary.txt': p.write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00'); return p, [p, 'is a binary file', 'expected UTF-8 text']
    if case == 'latin1.txt': p.write_bytes('caf\xe9 au lait\n'.encode('latin-1') * 3); return p, [p, 'is not UTF-8 text', 'expected UTF-8 text']
    if case == 'tiny.txt': p.write_text('too short\n'); return p, ['need at least 2 documents', 'tiny.txt#0000', 'val_corpus']
    if case == 'no_txt':
        p.mkdir(); (p/'notes.md').write_text('# not a .txt file\n'); return p, [p, 'has no .txt files', 'expected UTF-8 .txt files']
    if case == 'notext.jsonl': p.write_text('{"body": "a"}\n{"body": "b"}\n'); return p, [p, "has no key 'text' (keys: body)", "expected 'text'"]
    if case == 'broken.jsonl': p.write_text('{"text": "a"}\nnot json\n'); return p, [p, 'as JSON lines', 'expected one JSON object per line']
    if case == 'empty.jsonl': p.write_text(''); return p, [p, 'is empty: expected JSON lines']
    raise ValueError(case)

BAD = ['empty.txt', 'binary.txt', 'latin1.txt', 'tiny.txt', 'no_txt', 'notext.jsonl', 'broken.jsonl', 'empty.jsonl']


@pytest.mark.parametrize('case', BAD)
def test_bad_corpus(tmp_path, case):
    path, parts = _bad(tmp_path, case)
    assert_one_clear_line(lowcomm('corpus', path, cwd=tmp_path, timeout=TIMEOUT), 'corpus', *parts)


@pytest.mark.parametrize('case', ['binary.txt', 'notext.jsonl'])
def test_bad_corpus_for_train(tmp_path, case):
    path, parts = _bad(tmp_path, case)
    r = lowcomm('train', '--run_dir', tmp_path/'run', '--corpus', path, '--steps', '2', *SMALL, cwd=tmp_path, timeout=TIMEOUT)
    assert_one_clear_line(r, 'train', *parts)
    assert not (tmp_path/'run'/'checkpoints').exists()


def test_missing_corpus(tmp_path):
    r = lowcomm('corpus', tmp_path/'nowhere', cwd=tmp_path, timeout=TIMEOUT)
    assert_one_clear_line(r, 'corpus', f"DataConfig.corpus = '{tmp_path/'nowhere'}' is not allowed", 'an existing path')
