"""The management layer imports without any optional dependency."""

from __future__ import annotations

from _import_blocker import OPTIONAL_MODULES, block_imports, run_python

BLOCKER = block_imports(OPTIONAL_MODULES)


def run(code: str):
    return run_python(BLOCKER, code, timeout=120)


def test_import_without_optional_dependencies():
    proc = run("""
        import pkgutil, importlib, lfads_runs
        skip = ("lfads_runs.engine", "lfads_runs.plots")
        for m in pkgutil.walk_packages(lfads_runs.__path__, "lfads_runs."):
            if m.name.startswith(skip) or m.name == "lfads_runs.__main__":
                continue
            importlib.import_module(m.name)
        from lfads_runs.cli import _commands
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_engine_without_torch_names_the_extra():
    proc = run("""
        import lfads_runs
        try:
            lfads_runs.engine
        except lfads_runs.MissingDependencyError as e:
            print("missing:", e)
    """)
    assert "lfads_runs[torch]" in proc.stdout, proc.stdout + proc.stderr


def test_public_names_exist():
    import lfads_runs

    for name in lfads_runs.__all__:
        assert hasattr(lfads_runs, name), name
