"""Every document the repository cites is in the repository.

Four checks over the repository's own files (tracked files plus untracked files git does not
ignore; without git, a walk that skips data/, work_dirs/, checkpoints/ and virtual environments):

- no line cites, by the upper-case name ``NOTE_CITATION`` matches, a document that is not in
  the repository (docs/protocols.md holds the facts such citations pointed at);
- every path under docs/ ending in .md that is mentioned anywhere exists;
- every relative link in README.md and docs/*.md points at an existing file, and its
  ``#anchor``, if any, at an existing heading;
- every "<doc>.md section N" citation (also "sections N-M", "sections N and M") names a numbered
  heading of that document, and every "<doc>.md#anchor" a heading.
"""
import re
import subprocess
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Set, Tuple

import pytest

THIS_FILE = Path(__file__).resolve()
ROOT = THIS_FILE.parents[1]
SKIP_DIRS = {'.git', 'data', 'work_dirs', 'checkpoints', '.venv', 'venv', '__pycache__',
             '.pytest_cache', 'node_modules', 'build', 'dist'}
MAX_BYTES = 4_000_000

# Assembled from pieces so that this file does not match its own pattern.
_NOTE = 'REF' + 'ERENCE'
NOTE_CITATION = re.compile(r'\b' + _NOTE + r'(?:\.md)?\b')
DOCS_PATH = re.compile(r'(?<![\w./-])docs/[\w./-]*?\.md\b')
NUM = r'\d+(?:\.\d+)*'
SECTION_CITATION = re.compile(
    r'(?<![\w./-])((?:docs/)?[\w-]+\.md),?\s+(?:sections?|\u00a7)\s*(' + NUM + r')'
    r'((?:\s*(?:-|\u2013|to|and|,|/)\s*' + NUM + r')*)')
ANCHOR_CITATION = re.compile(r'(?<![\w./-])((?:docs/)?[\w-]+\.md)#([\w-]+)')
MD_LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
HEADING = re.compile(r'^(#{1,6})\s+(.*?)\s*#*\s*$')
NUMBERED_HEADING = re.compile(r'^(' + NUM + r')\.?(?:\s|$)')
COMMENT_LEADER = re.compile(r'^\s*(?:#+|//|\*|"""|\'\'\')?\s*')


def _walk() -> List[Path]:
    files = []
    for path in ROOT.rglob('*'):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith('.egg-info') for part in rel.parts[:-1]):
            continue
        if path.is_file():
            files.append(path)
    return files


@lru_cache(maxsize=1)
def repository_files() -> Tuple[Path, ...]:
    """Tracked files and untracked, non-ignored ones; a filtered walk where git is unavailable."""
    try:
        out = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                             cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        paths = [ROOT / p for p in out.decode('utf-8', 'replace').split('\0') if p]
    except (OSError, subprocess.SubprocessError):
        paths = _walk()
    keep = []
    for path in sorted(set(paths)):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS for part in rel.parts[:-1]) or not path.is_file():
            continue
        keep.append(path)
    return tuple(keep)


@lru_cache(maxsize=None)
def read_text(path: Path) -> Optional[str]:
    """The file's text, or None for binary or very large files."""
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b'\0' in data[:8192]:
        return None
    return data.decode('utf-8', 'replace')


def text_files() -> List[Tuple[Path, str]]:
    """Text files of the repository, this one excepted (its examples would match)."""
    return [(p, t) for p in repository_files()
            if p != THIS_FILE and (t := read_text(p)) is not None]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication)."""
    title = re.sub(r'`([^`]*)`', r'\1', title)
    title = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', title)  # links keep their text
    title = title.strip().lower()
    title = re.sub(r'[^\w\- ]', '', title)
    return title.replace(' ', '-')


def _markdown_lines(text: str) -> List[Tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(('```', '~~~')):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


@lru_cache(maxsize=None)
def headings(path: Path) -> Tuple[Set[str], Set[str]]:
    """(anchors, section numbers) of a markdown file's headings."""
    anchors, numbers, seen = set(), set(), Counter()
    for _, line in _markdown_lines(read_text(path) or ''):
        m = HEADING.match(line)
        if not m:
            continue
        title = m.group(2)
        slug = github_slug(title)
        anchors.add(slug if not seen[slug] else f'{slug}-{seen[slug]}')
        seen[slug] += 1
        n = NUMBERED_HEADING.match(title)
        if n:
            numbers.add(n.group(1))
    return anchors, numbers


def resolve_doc(name: str, cited_from: Path) -> Optional[Path]:
    """The repository file a cited ``x.md`` / ``docs/x.md`` names, or None."""
    candidates = [ROOT / name] if name.startswith('docs/') else \
        [cited_from.parent / name, ROOT / 'docs' / name, ROOT / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _with_next_line(lines: List[str], i: int) -> str:
    """Line i joined with the next one, minus its comment leader, for citations that wrap."""
    nxt = COMMENT_LEADER.sub('', lines[i + 1], count=1) if i + 1 < len(lines) else ''
    return lines[i].rstrip() + ' ' + nxt


def test_no_citation_of_documents_outside_the_repository():
    bad = [f'{rel(p)}:{n}: {line.strip()}' for p, text in text_files()
           for n, line in enumerate(text.splitlines(), 1) if NOTE_CITATION.search(line)]
    assert not bad, ('these lines cite a document that is not in the repository; cite '
                     'docs/protocols.md (or another file under docs/) instead:\n' + '\n'.join(bad))


def test_docs_paths_exist():
    bad = []
    for path, text in text_files():
        for n, line in enumerate(text.splitlines(), 1):
            for m in DOCS_PATH.finditer(line):
                if not (ROOT / m.group(0)).is_file():
                    bad.append(f'{rel(path)}:{n}: {m.group(0)}')
    assert not bad, 'missing documents:\n' + '\n'.join(bad)


def _markdown_files() -> List[Path]:
    files = [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))
    return [p for p in files if p.is_file()]


@pytest.mark.parametrize('md', _markdown_files(), ids=rel)
def test_markdown_links_resolve(md):
    bad = []
    for n, line in _markdown_lines(read_text(md) or ''):
        line = re.sub(r'`[^`]*`', '', line)
        for m in MD_LINK.finditer(line):
            target = m.group(1)
            if re.match(r'^[a-zA-Z][a-zA-Z0-9+.-]*:', target):  # http:, https:, mailto: ...
                continue
            file_part, _, anchor = target.partition('#')
            dest = (md.parent / file_part).resolve() if file_part else md
            if not dest.exists():
                bad.append(f'{rel(md)}:{n}: {target} (no such file)')
                continue
            if anchor and dest.suffix == '.md' and anchor not in headings(dest)[0]:
                bad.append(f'{rel(md)}:{n}: {target} (no heading with anchor #{anchor})')
    assert not bad, 'broken links:\n' + '\n'.join(bad)


def _cited_sections(first: str, rest: str) -> List[str]:
    return [first] + re.findall(NUM, rest)


def test_cited_sections_exist():
    bad = []
    for path, text in text_files():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            joined = _with_next_line(lines, i)
            for m in SECTION_CITATION.finditer(joined):
                if m.start() >= len(line.rstrip()):  # starts on the next line: counted there
                    continue
                doc = resolve_doc(m.group(1), path)
                if doc is None:
                    bad.append(f'{rel(path)}:{i + 1}: {m.group(0)} (no such document)')
                    continue
                numbers = headings(doc)[1]
                missing = [s for s in _cited_sections(m.group(2), m.group(3)) if s not in numbers]
                if missing:
                    bad.append(f'{rel(path)}:{i + 1}: {m.group(0)} (no numbered heading '
                               f'{", ".join(missing)} in {rel(doc)})')
            for m in ANCHOR_CITATION.finditer(line):
                doc = resolve_doc(m.group(1), path)
                if doc is None:
                    bad.append(f'{rel(path)}:{i + 1}: {m.group(0)} (no such document)')
                elif m.group(2) not in headings(doc)[0]:
                    bad.append(f'{rel(path)}:{i + 1}: {m.group(0)} (no heading with that anchor)')
    assert not bad, 'citations of missing sections:\n' + '\n'.join(bad)


def test_protocols_sections_are_numbered():
    """docs/protocols.md keeps the numbered sections 1-8 that the code cites."""
    numbers = headings(ROOT / 'docs' / 'protocols.md')[1]
    assert {str(i) for i in range(1, 9)} <= numbers, sorted(numbers)


def test_slug_rule():
    assert github_slug('1.1 DINOv1') == '11-dinov1'
    assert github_slug('Gram anchoring (DINOv3)') == 'gram-anchoring-dinov3'
    assert github_slug('The dense backbone for configs') == 'the-dense-backbone-for-configs'
    assert github_slug('Matmul rate ("roofline") on this machine') == \
        'matmul-rate-roofline-on-this-machine'


def test_section_citation_pattern():
    found = [(m.group(1), _cited_sections(m.group(2), m.group(3)))
             for m in SECTION_CITATION.finditer(
                 'see docs/protocols.md section 4.1; protocols.md sections 1.1-1.4 and '
                 '(docs/depth.md, section 2)')]
    assert found == [('docs/protocols.md', ['4.1']), ('protocols.md', ['1.1', '1.4']),
                     ('docs/depth.md', ['2'])]
    assert NOTE_CITATION.search('see ' + _NOTE + ' section 6')
    assert NOTE_CITATION.search('(' + _NOTE + '.md 1.4)')
    assert not NOTE_CITATION.search('a reference implementation')

