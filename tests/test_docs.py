"""The documentation stays inside the repository and agrees with itself.

- Every relative link in every Markdown file of the repository resolves to a file (or folder) of the
  repository, never outside it; a link with an #anchor into a Markdown file names a heading that exists
  there (GitHub's heading ids).
- Every `docs/method.md §N` that the code cites names a numbered heading of docs/method.md, and no code
  cites the project's old out-of-repository spec files.
- README.md fits a few screens and starts with the two set-up commands.

No torch, no fiagen import: this runs in well under a second.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("fiagen", "tests", "benchmarks")
README_MAX_LINES = 220

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"<a\s+(?:name|id)=[\"']([^\"']+)[\"']", re.IGNORECASE)
SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*[a-z]?)\.?(?:\s|$)")
SECTION = r"[0-9][0-9.]*[a-z]?"
METHOD_CITATION = re.compile(rf"docs/method\.md((?:\s*(?:,|and|or)?\s*§\s*{SECTION}(?:\s*[-–]\s*{SECTION})?)+)")
SECTION_REF = re.compile(r"§\s*([0-9][0-9.]*[a-z]?)(?:\s*[-–]\s*([0-9][0-9.]*[a-z]?))?")
OLD_SPEC = re.compile("|".join(("METHOD" + r"\.md", "DESIGN" + r"\.md", "STYLE" + r"\.md", "shared" + "/docs")))
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


# ---------------------------------------------------------------- helpers (tested below on bad input)

def github_slug(heading: str) -> str:
    """The id GitHub gives a heading: lowercase, punctuation dropped (word characters, '-' and spaces
    kept), spaces -> '-'; inline markup is punctuation, so `code` and **bold** lose their marks."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _prose_lines(text: str, blank_code: bool = True) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked (`blank_code`)."""
    out, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is None:
            out.append((number, INLINE_CODE.sub(lambda s: " " * len(s.group(0)), line) if blank_code else line))
    return out


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown text defines: its headings' GitHub ids (repeats get -1, -2, ...) and
    explicit <a name/id> anchors."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(text, blank_code=False):
        found.update(HTML_ID.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition outside code."""
    out = []
    for number, line in _prose_lines(text):
        out.extend((number, target) for target in INLINE_LINK.findall(line))
        m = REFERENCE_DEF.match(line)
        if m:
            out.append((number, m.group(1)))
    return out


def repository_files(root: Path) -> set[str] | None:
    """Paths (relative, '/'-separated) of the files a clone holds: tracked plus untracked-not-ignored
    files that exist now; None outside a git work tree."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    names = {n for n in listed.decode("utf-8", "surrogateescape").split("\0") if n}
    return {n for n in names if (root / n).exists()}


def markdown_files(root: Path, files: set[str] | None) -> list[Path]:
    """The repository's Markdown files (never those of a virtual environment)."""
    if files is None:
        found = [p for p in root.rglob("*.md") if ".venv" not in p.relative_to(root).parts]
    else:
        found = [root / n for n in files if n.lower().endswith(".md")]
    return sorted(p for p in found if not any(part.startswith(".venv") for part in p.relative_to(root).parts))


def link_problems(md: Path, root: Path, files: set[str] | None = None) -> list[str]:
    """What is wrong with the relative links of one Markdown file: a target outside `root`, a target
    that the repository does not hold, an #anchor that the target Markdown file does not define."""
    root = root.resolve()
    text = md.read_text(encoding="utf-8")
    rel_md = md.resolve().relative_to(root).as_posix()
    problems = []
    for number, target in links(text):
        if EXTERNAL.match(target) or target.startswith("//"):
            continue
        path_part, _, anchor = target.partition("#")
        where = f"{rel_md}:{number}: ({target})"
        if path_part:
            base = root if path_part.startswith("/") else md.resolve().parent
            resolved = (base / path_part.lstrip("/")).resolve()
            try:
                rel = resolved.relative_to(root).as_posix()
            except ValueError:
                problems.append(f"{where} leaves the repository")
                continue
            in_repo = resolved.exists() if files is None else (
                rel in files or rel == "." or any(f.startswith(rel + "/") for f in files))
            if not in_repo:
                problems.append(f"{where} names {rel}, which the repository does not hold")
                continue
        else:
            resolved = md.resolve()
        if anchor and resolved.suffix.lower() == ".md" and resolved.is_file():
            if anchor.lower() not in anchors(resolved.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading #{anchor} in {resolved.relative_to(root).as_posix()}")
    return problems


def method_sections(text: str) -> set[str]:
    """The section numbers of docs/method.md's numbered headings ('2', '2.3', '2.3b', ...)."""
    out = set()
    for _, line in _prose_lines(text, blank_code=False):
        m = HEADING.match(line)
        if m:
            n = SECTION_NUMBER.match(m.group(2))
            if n:
                out.add(n.group(1))
    return out


def method_citations(text: str) -> list[tuple[int, str]]:
    """(line number, section) of every `docs/method.md §N` (also `§N, §M`, `§N-M`: both ends) in a text."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        for m in METHOD_CITATION.finditer(line):
            for first, last in SECTION_REF.findall(m.group(1)):
                out.append((number, first.rstrip(".")))
                if last:
                    out.append((number, last.rstrip(".")))
    return out


def code_files(root: Path) -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (root / d).rglob("*.py"))


# ---------------------------------------------------------------- the repository's own documents

FILES = repository_files(ROOT)
MARKDOWN = markdown_files(ROOT, FILES)


def test_the_repository_has_its_docs():
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    for wanted in ("README.md", "docs/method.md", "docs/design.md", "docs/results.md", "docs/reliability.md",
                   "benchmarks/README.md"):
        assert wanted in names, f"{wanted} is missing"


@pytest.mark.parametrize("md", MARKDOWN, ids=[p.relative_to(ROOT).as_posix() for p in MARKDOWN])
def test_every_relative_link_resolves_inside_the_repository(md):
    problems = link_problems(md, ROOT, FILES)
    assert not problems, "\n".join(problems)


def test_every_method_section_the_code_cites_exists():
    sections = method_sections((ROOT / "docs" / "method.md").read_text(encoding="utf-8"))
    assert {"1", "2", "2.1", "2.3", "2.3b", "2.4", "3", "4", "5", "6"} <= sections
    cited, missing = 0, []
    for path in code_files(ROOT):
        for number, section in method_citations(path.read_text(encoding="utf-8")):
            cited += 1
            if section not in sections:
                missing.append(f"{path.relative_to(ROOT)}:{number}: docs/method.md §{section}")
    assert cited >= 10, "the code should cite the method by section"
    assert not missing, "no such section in docs/method.md:\n" + "\n".join(missing)


def test_no_code_cites_the_old_spec_files():
    """The spec lives in docs/: citations of files outside the repository would send a reader nowhere."""
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in code_files(ROOT)
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if OLD_SPEC.search(line)]
    assert not found, "\n".join(found)


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"
    body = [line for line in lines[1:] if line.strip()]
    assert lines[0].startswith("# "), "README.md starts with its title"
    assert body[0].startswith("```"), "the first thing after the title is the set-up commands' block"
    assert body[1].startswith("make demo") and body[2].startswith("make test") and body[3].startswith("```")


# ---------------------------------------------------------------- the checks can fail

def test_github_slugs():
    assert github_slug("2.3b SBI's spatial step") == "23b-sbis-spatial-step"
    assert github_slug("`fiagen run PIPELINE.yaml`") == "fiagen-run-pipelineyaml"
    assert github_slug("Paths stay inside `--root`") == "paths-stay-inside---root"
    assert github_slug("bench_faces.py") == "bench_facespy"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_link_problems_finds_bad_links(tmp_path):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (tmp_path / "outside.md").write_text("# Outside\n")
    (repo / "docs" / "method.md").write_text("# Method\n\n## 2. Pseudo-fakes\n\n### 2.3b SBI's spatial step\n")
    (repo / "README.md").write_text(
        "# r\n"
        "[ok](docs/method.md#23b-sbis-spatial-step) [ok too](docs/) [web](https://example.org/x.md)\n"
        "[escape](../outside.md)\n"
        "[missing](docs/design.md)\n"
        "[bad anchor](docs/method.md#3-model)\n"
        "[self](#r) [bad self](#nowhere)\n"
        "`[in code](nowhere.md)`\n"
        "```\n[in a block](nowhere.md)\n```\n")
    problems = link_problems(repo / "README.md", repo)
    assert len(problems) == 4, problems
    assert "leaves the repository" in problems[0] and "outside.md" in problems[0]
    assert "docs/design.md" in problems[1]
    assert "#3-model" in problems[2]
    assert "#nowhere" in problems[3]
    # a file on disk that the repository does not hold (ignored, say) is not a target a clone has
    assert link_problems(repo / "README.md", repo, {"README.md"})[0].endswith("does not hold")


def test_method_citations_are_checked(tmp_path):
    m = "docs/" + "method.md"  # spelled apart so that this file cites no section itself
    text = (f'"""See {m} §2.3b and {m} §2.1, §9; {m} §3-5."""\n'
            "x = 1  # the paper's §4 is not ours\n")
    assert method_citations(text) == [(1, "2.3b"), (1, "2.1"), (1, "9"), (1, "3"), (1, "5")]
    sections = method_sections("# M\n## 2. A\n### 2.1 B\n### 2.3b C\n## 3. D\n```\n## 9. in code\n```\n")
    assert sections == {"2", "2.1", "2.3b", "3"}
    assert {s for _, s in method_citations(text)} - sections == {"9", "5"}
    assert OLD_SPEC.search("see " + "METHOD" + ".md §2") and not OLD_SPEC.search("docs/method.md §2")
