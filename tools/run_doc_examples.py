#!/usr/bin/env python
"""Run every code example of the documentation and fail, naming page and line, on any error.

Usage::

    python tools/run_doc_examples.py                 # every page of mkdocs.yml's nav
    python tools/run_doc_examples.py docs/results.md # some pages
    python tools/run_doc_examples.py --update        # rewrite the expected outputs in place
    python tools/run_doc_examples.py --list          # show what would run

What runs, page by page (pages in navigation order, blocks in page order):

- ```` ```python ```` blocks: executed in one fresh namespace per page, in a fresh
  temporary working directory (the process changes into it). Code is compiled
  with the Markdown file as its file name and its own line numbers, so a
  traceback points at ``docs/page.md:LINE``.
- ```` ```bash ```` blocks whose commands start with ``lfads-runs``: each command
  runs as ``python -m lfads_runs ...`` in the working directory and must exit 0.
- Any other ``python`` or ``bash`` block must be marked ``<!-- no-run: reason -->``
  on the line before it; an unmarked block that cannot run is an error.

Markers (HTML comments on the line just before a fenced block; invisible on the site):

``<!-- no-run: reason -->``
    Shown, never executed (GPU-only or Slurm-only commands, installation).
``<!-- file: NAME -->``
    The block (YAML, Python, text) is written to ``NAME`` in the working directory
    before the following blocks run; a Python block so marked is not executed.
``<!-- data-source -->``
    The Python block that makes the ``data`` fixture (also run in its own page).
``<!-- expected-output -->``
    A ```` ```text ```` block: the standard output of the previous executed block
    must equal it (trailing spaces and surrounding blank lines ignored, the
    working directory's path shown as ``~/project``). ``--update`` rewrites these blocks.

Page marker (anywhere in the page):

``<!-- docs-fixture: NAME -->``
    Copy fixture ``NAME`` (see :data:`FIXTURES`) into the working directory first.
    Every page gets the ``data`` fixture: small synthetic Lorenz datasets in
    ``data/dataset001.h5`` ... ``data/dataset003.h5``, made by the block of
    docs/index.md marked ``<!-- data-source -->`` (run once, then copied).

Exit status: 0 when every example ran, 1 otherwise (2 for bad usage).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<name>[a-z-]+)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")
_FIXTURE = re.compile(r"<!--\s*docs-fixture:\s*(?P<name>[\w-]+)\s*-->")


@dataclass
class Block:
    """One fenced block of a page."""

    page: Path
    line: int  #: 1-based line of the first code line (after the opening fence)
    lang: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)
    end_line: int = 0  #: 1-based line of the closing fence

    @property
    def where(self) -> str:
        return f"{_rel(self.page)}:{self.line}"

    @property
    def runnable(self) -> bool:
        if "no-run" in self.markers or "file" in self.markers:
            return False
        if self.lang == "python":
            return True
        return self.lang == "bash" and _is_cli(self.code)


class ExampleError(Exception):
    """An example failed; the message names page and line."""


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        try:
            return str(p.resolve().relative_to(REPO))
        except ValueError:
            return str(p)


def _commands(code: str) -> list[str]:
    """Shell commands of a bash block: continuation lines joined, comments dropped."""
    out, cur = [], ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if cur:
            cur += " " + line.strip()
        elif line.strip() and not line.strip().startswith("#"):
            cur = line.strip()
        else:
            continue
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        out.append(cur)
        cur = ""
    if cur:
        out.append(cur)
    return out


def _is_cli(code: str) -> bool:
    cmds = _commands(code)
    return bool(cmds) and all(c.split()[0] == "lfads-runs" for c in cmds)


def parse_page(page: Path) -> list[Block]:
    """Fenced blocks of a Markdown page with the markers written just before them."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        lang = info.split()[0].strip("{}.").lower() if info else ""
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (mm := _MARKER.match(lines[j])):
            markers.setdefault(mm.group("name"), (mm.group("arg") or "").strip())
            j -= 1
        body: list[str] = []
        k = i + 1
        while k < len(lines) and not (
            lines[k].strip().startswith(fence[0] * len(fence))
            and lines[k].strip().strip(fence[0]) == ""
        ):
            body.append(lines[k])
            k += 1
        if k >= len(lines):
            raise ExampleError(f"{_rel(page)}:{i + 1}: code fence is never closed")
        blocks.append(Block(page, i + 2, lang, "\n".join(body) + "\n", markers, end_line=k + 1))
        i = k + 1
    for b in blocks:
        unknown = set(b.markers) - {"no-run", "file", "expected-output", "data-source"}
        if unknown:
            raise ExampleError(f"{b.where}: unknown marker(s) {sorted(unknown)}")
        if "no-run" in b.markers and not b.markers["no-run"]:
            raise ExampleError(f"{b.where}: <!-- no-run: ... --> needs a reason")
        if "expected-output" in b.markers and b.lang != "text":
            raise ExampleError(f"{b.where}: expected-output must mark a ```text block")
        if b.lang in ("python", "bash") and not b.runnable and not b.markers:
            raise ExampleError(
                f"{b.where}: this {b.lang} block cannot run here; mark it "
                "<!-- no-run: reason --> or make it an lfads-runs command"
            )
    return blocks


def page_fixtures(page: Path) -> list[str]:
    return _FIXTURE.findall(page.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ fixtures
def make_data(dst: Path) -> None:
    """Run the block of docs/index.md marked ``<!-- data-source -->`` in ``dst``."""
    page = REPO / "docs" / "index.md"
    blocks = [b for b in parse_page(page) if "data-source" in b.markers]
    if len(blocks) != 1:
        raise ExampleError(f"{_rel(page)}: expected one block marked <!-- data-source -->")
    _run_python(blocks[0], {"__name__": "__main__"})


#: Fixture name -> builder(dst). Built once per process into a cache folder, then copied.
#: Any other fixture name is a page stem: the working directory that page left behind.
FIXTURES: dict[str, Callable[[Path], None]] = {"data": make_data}


class FixtureCache:
    def __init__(self, root: Path, docs: Path, update: bool = False):
        self.root = root
        self.docs = docs
        self.update = update
        self.built: dict[str, Path] = {}
        self.seconds: dict[str, float] = {}
        self.page_dirs: dict[Path, Path] = {}  #: working directories of pages that passed
        self.results: dict[Path, PageResult] = {}
        self.with_data = True
        self.verbose = False
        self._building: set[str] = set()

    def copy_into(self, name: str, dst: Path) -> None:
        if name in FIXTURES:
            if name not in self.built:
                folder = self.root / name
                folder.mkdir(parents=True)
                t0 = time.perf_counter()
                with _in_dir(folder), contextlib.redirect_stdout(io.StringIO()):
                    FIXTURES[name](folder)
                self.seconds[name] = time.perf_counter() - t0
                self.built[name] = folder
            src = self.built[name]
        else:
            page = (self.docs / f"{name}.md").resolve()
            if not page.is_file():
                raise ExampleError(
                    f"unknown fixture {name!r}: neither {', '.join(FIXTURES)} nor a page {page}"
                )
            if page not in self.page_dirs:
                if name in self._building:
                    raise ExampleError(f"fixture {name!r} depends on itself")
                self._building.add(name)
                try:
                    run_page(page, self, self.root, self.update)
                except ExampleError as exc:
                    raise ExampleError(f"fixture page {name} failed:\n{exc}") from None
                finally:
                    self._building.discard(name)
            src = self.page_dirs[page]
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)


@contextlib.contextmanager
def _in_dir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ------------------------------------------------------------------ running
#: How the working directory appears in expected outputs.
WORKDIR_SHOWN = "~/project"


def _normalise(text: str, workdir: Path) -> str:
    for w in {str(workdir), str(workdir.resolve())}:
        text = text.replace(w, WORKDIR_SHOWN)
    lines = [ln.rstrip() for ln in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _run_python(block: Block, ns: dict) -> str:
    code = "\n" * (block.line - 1) + block.code
    try:
        compiled = compile(code, str(block.page), "exec")
    except SyntaxError as exc:
        raise ExampleError(f"{_rel(block.page)}:{exc.lineno}: syntax error: {exc.msg}") from None
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compiled, ns)  # noqa: S102 - running the documentation is the point
    except BaseException as exc:  # noqa: BLE001 - report everything, including SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = traceback.extract_tb(exc.__traceback__)
        page_frames = [f for f in tb if f.filename == str(block.page)]
        line = page_frames[-1].lineno if page_frames else block.line
        detail = "".join(traceback.format_exception(exc)).rstrip()
        raise ExampleError(
            f"{_rel(block.page)}:{line}: example failed: {type(exc).__name__}: {exc}\n"
            f"--- output so far ---\n{out.getvalue()}--- traceback ---\n{detail}"
        ) from None
    return out.getvalue()


def _check_yaml(block: Block) -> None:
    """Every YAML snippet on a page must at least parse."""
    try:
        yaml.safe_load(block.code)
    except yaml.YAMLError as exc:
        raise ExampleError(f"{block.where}: YAML does not parse: {exc}") from None


def _run_bash(block: Block, env: dict[str, str]) -> str:
    out = []
    for cmd in _commands(block.code):
        argv = [sys.executable, "-m", "lfads_runs", *shlex.split(cmd)[1:]]
        p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        out.append(p.stdout)
        if p.returncode != 0:
            raise ExampleError(
                f"{block.where}: command failed with exit code {p.returncode}: {cmd}\n"
                f"--- stdout ---\n{p.stdout}--- stderr ---\n{p.stderr}"
            )
    return "".join(out)


@dataclass
class PageResult:
    page: Path
    ran: int
    skipped: list[tuple[str, str]]
    checked_outputs: int
    seconds: float
    updates: list[tuple[Block, str]]


def run_page(page: Path, cache: FixtureCache, scratch: Path, update: bool) -> PageResult:
    blocks = parse_page(page)
    page = page.resolve()
    if page in cache.results:  # already ran as another page's fixture
        return cache.results[page]
    workdir = Path(tempfile.mkdtemp(prefix=page.stem + "-", dir=scratch))
    for name in [*(["data"] if cache.with_data else []), *page_fixtures(page)]:
        cache.copy_into(name, workdir)
    t0 = time.perf_counter()  # fixtures are timed separately
    env = dict(os.environ, MPLBACKEND="Agg")
    ns: dict = {"__name__": "__main__", "__file__": str(page)}
    ran, checked, skipped, updates = 0, 0, [], []
    last_output: str | None = None
    old_env = dict(os.environ)
    os.environ["MPLBACKEND"] = "Agg"
    try:
        with _in_dir(workdir):
            for b in blocks:
                if "file" in b.markers:
                    target = workdir / b.markers["file"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(b.code, encoding="utf-8")
                    continue
                if "expected-output" in b.markers:
                    if last_output is None:
                        raise ExampleError(
                            f"{b.where}: expected output without an example before it"
                        )
                    got = _normalise(last_output, workdir)
                    want = _normalise(b.code, workdir)
                    if got != want:
                        if update:
                            updates.append((b, got))
                        else:
                            raise ExampleError(
                                f"{b.where}: output differs from the page (run with --update to "
                                f"rewrite it)\n--- page ---\n{want}\n--- actual ---\n{got}"
                            )
                    checked += 1
                    last_output = None
                    continue
                if b.lang == "yaml":
                    _check_yaml(b)
                if not b.runnable:
                    if "no-run" in b.markers:
                        skipped.append((b.where, b.markers["no-run"]))
                    continue
                t_block = time.perf_counter()
                last_output = _run_python(b, ns) if b.lang == "python" else _run_bash(b, env)
                ran += 1
                if cache.verbose:
                    print(f"       {b.where}: {time.perf_counter() - t_block:.1f} s", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        _close_figures()
    result = PageResult(page, ran, skipped, checked, time.perf_counter() - t0, updates)
    if updates:
        apply_updates(page, updates)
    cache.results[page] = result
    cache.page_dirs[page] = workdir
    return result


def _close_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def apply_updates(page: Path, updates: list[tuple[Block, str]]) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    for b, text in sorted(updates, key=lambda u: -u[0].line):
        lines[b.line - 1 : b.end_line - 1] = text.splitlines()
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")


def nav_pages(mkdocs_yml: Path) -> list[Path]:
    """Markdown pages in the order of mkdocs.yml's ``nav``."""
    cfg = yaml.safe_load(mkdocs_yml.read_text(encoding="utf-8"))
    docs = mkdocs_yml.parent / cfg.get("docs_dir", "docs")
    out: list[Path] = []

    def walk(item) -> None:
        if isinstance(item, str):
            if item.endswith(".md"):
                out.append(docs / item)
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)
        elif isinstance(item, list):
            for v in item:
                walk(v)

    walk(cfg.get("nav", []))
    rest = sorted(set(docs.rglob("*.md")) - set(out))
    return out + rest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: mkdocs.yml nav)")
    ap.add_argument("--mkdocs", type=Path, default=REPO / "mkdocs.yml")
    ap.add_argument("--update", action="store_true", help="rewrite expected outputs in place")
    ap.add_argument("--list", action="store_true", help="list the blocks and exit")
    ap.add_argument("--keep", action="store_true", help="keep the working directories")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the time of each block")
    ap.add_argument(
        "--no-data", action="store_true", help="do not copy the example data into the pages"
    )
    args = ap.parse_args(argv)
    pages = [p.resolve() for p in args.pages] or nav_pages(args.mkdocs)
    missing = [p for p in pages if not p.is_file()]
    if missing:
        print(f"no such page: {', '.join(map(str, missing))}", flush=True)
        return 2
    if args.list:
        for page in pages:
            for b in parse_page(page):
                state = (
                    "run"
                    if b.runnable
                    else next(
                        (m for m in ("file", "expected-output", "no-run") if m in b.markers), "-"
                    )
                )
                if b.lang in ("python", "bash") or b.markers:
                    print(f"{b.where}\t{b.lang}\t{state}")
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="lfads-docs-"))
    docs = args.mkdocs.parent / "docs"
    cache = FixtureCache(scratch / "_fixtures", docs, args.update)
    cache.with_data = not args.no_data
    cache.verbose = args.verbose
    t_all = time.perf_counter()
    failures = 0
    try:
        for page in pages:
            try:
                r = run_page(page, cache, scratch, args.update)
            except ExampleError as exc:
                failures += 1
                print(f"FAIL {exc}", flush=True)
                continue
            skipped = f", {len(r.skipped)} not run" if r.skipped else ""
            upd = f", {len(r.updates)} outputs rewritten" if r.updates else ""
            print(
                f"ok   {_rel(page)}: {r.ran} blocks, {r.checked_outputs} outputs checked"
                f"{skipped}{upd} ({r.seconds:.1f} s)"
            )
            for where, why in r.skipped:
                print(f"       not run {where}: {why}")
    finally:
        if args.keep:
            print(f"working directories kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    for name, s in cache.seconds.items():
        print(f"fixture {name}: built in {s:.1f} s")
    total = time.perf_counter() - t_all
    if failures:
        print(f"{failures} page(s) failed ({total:.1f} s)", flush=True)
        return 1
    print(f"all examples ran ({len(pages)} pages, {total:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
