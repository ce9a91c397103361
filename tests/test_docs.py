"""The documentation: strict mkdocs build, generated reference pages, every example runs."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
RUNNER = TOOLS / "run_doc_examples.py"
GENERATOR = TOOLS / "gen_params_reference.py"

sys.path.insert(0, str(TOOLS))
import run_doc_examples as rde  # noqa: E402

needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (pip install 'lfads_runs[docs]')",
)
needs_engine = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("matplotlib") is None,
    reason="the examples train and plot: they need the torch and plot extras",
)


def _run(*args: object, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# ------------------------------------------------------------------ mkdocs
@needs_mkdocs
def test_mkdocs_build_strict(tmp_path):
    p = _run(
        "-m", "mkdocs", "build", "--strict", "-f", REPO / "mkdocs.yml", "-d", tmp_path / "site"
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "site" / "reference" / "run-params.html").is_file()


@needs_mkdocs
def test_mkdocs_strict_rejects_a_broken_link(tmp_path):
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "troubleshooting.md"
    page.write_text(page.read_text() + "\nSee [nowhere](results.md#no-such-section).\n")
    p = _run("-m", "mkdocs", "build", "--strict", "-d", tmp_path / "site", cwd=tmp_path)
    assert p.returncode != 0
    assert "no-such-section" in p.stdout + p.stderr


# ------------------------------------------------------------------ generated pages
def test_generated_reference_pages_are_up_to_date():
    p = _run(GENERATOR, "--check")
    assert p.returncode == 0, "stale generated docs; run python tools/gen_params_reference.py\n" + (
        p.stdout + p.stderr
    )


def test_stale_generated_page_is_detected(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    page = docs / "reference" / "run-params.md"
    text = page.read_text()
    assert "| `c_factors_dim` |" in text
    page.write_text(text.replace("| `c_factors_dim` |", "| `c_factors_dimension` |", 1))
    p = _run(GENERATOR, "--check", "--docs", docs)
    assert p.returncode == 1
    assert "run-params.md" in p.stderr


def test_run_params_page_lists_every_field():
    from lfads_runs.params import param_fields

    text = (REPO / "docs" / "reference" / "run-params.md").read_text()
    for f in param_fields():
        assert f"| `{f.name}` | `{f.matlab_name}` |" in text, f.name


def test_symbolic_shapes_match_a_concrete_model():
    """The generated shape formulas evaluate to the shapes ModelSpec gives a real model."""
    import gen_params_reference as gen

    from lfads_runs.hparams import Hyperparameters
    from lfads_runs.model_spec import DatasetSpec, ModelSpec

    dims = dict(D=7, F=3, H_ic=11, I=5, G=13, H_ci=17, C=19, U=2)
    hps = Hyperparameters(
        factors_dim=3, ic_enc_dim=11, ic_dim=5, gen_dim=13, ci_enc_dim=17, con_dim=19, co_dim=2
    )
    spec = ModelSpec.build(hps, [DatasetSpec("dsA", 7), DatasetSpec("dsB", 7)], num_steps=10)
    symbolic = gen._symbolic_shapes("poisson")

    def value(expr: str) -> int:
        total = 0
        for term in expr.split(" + "):
            coef, _, sym = term.rpartition("·")
            total += (int(coef) if coef else 1) * (int(sym) if sym.isdigit() else dims[sym])
        return total

    for v in spec.variables:
        assert tuple(value(e) for e in symbolic[v.name]) == v.shape, v.name


# ------------------------------------------------------------------ the examples
def test_every_code_block_is_runnable_or_marked():
    pages = rde.nav_pages(REPO / "mkdocs.yml")
    assert len(pages) >= 10
    n = 0
    for page in pages:
        for b in rde.parse_page(page):  # raises on unmarked, non-runnable blocks
            n += b.runnable
    assert n >= 50


def _page(tmp_path: Path, body: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text("# Test page\n\n" + body)
    return page


def test_broken_example_fails_with_page_and_line(tmp_path):
    page = _page(
        tmp_path,
        "```python\nx = 1\n```\n\ntext\n\n```python\ny = x + 1\nraise ValueError('boom')\n```\n",
    )
    p = _run(RUNNER, "--no-data", page)
    assert p.returncode == 1
    # the raise is on line 11 of the page
    assert "page.md:11: example failed: ValueError: boom" in p.stdout


def test_wrong_expected_output_fails(tmp_path):
    page = _page(
        tmp_path,
        "```python\nprint(6 * 7)\n```\n\n<!-- expected-output -->\n```text\n41\n```\n",
    )
    p = _run(RUNNER, "--no-data", page)
    assert p.returncode == 1
    assert "output differs from the page" in p.stdout
    assert "--- actual ---\n42" in p.stdout


def test_unmarked_shell_block_is_rejected(tmp_path):
    page = _page(tmp_path, "```bash\nrm -rf build\n```\n")
    p = _run(RUNNER, "--no-data", page)
    assert p.returncode == 1
    assert "page.md:4: this bash block cannot run here" in p.stdout


def test_failing_cli_command_fails(tmp_path):
    page = _page(tmp_path, "```bash\nlfads-runs list no_such_config.yaml\n```\n")
    p = _run(RUNNER, "--no-data", page)
    assert p.returncode == 1
    assert "command failed with exit code 2" in p.stdout


def test_marked_blocks_files_and_outputs(tmp_path):
    page = _page(
        tmp_path,
        "<!-- no-run: needs a GPU -->\n```python\nraise RuntimeError\n```\n\n"
        "<!-- file: notes.yaml -->\n```yaml\nanswer: 42\n```\n\n"
        "```python\nimport yaml, os\nprint(yaml.safe_load(open('notes.yaml'))['answer'])\n"
        "print(os.getcwd())\n```\n\n"
        "<!-- expected-output -->\n```text\n42\n~/project\n```\n",
    )
    p = _run(RUNNER, "--no-data", page)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 not run" in p.stdout and "needs a GPU" in p.stdout


@pytest.mark.slow
@needs_engine
def test_all_documentation_examples_run():
    """Every example of every page, as CI runs them (trains two tiny models)."""
    p = _run(RUNNER, timeout=900)
    assert p.returncode == 0, p.stdout[-8000:] + p.stderr[-4000:]
    assert "all examples ran" in p.stdout
