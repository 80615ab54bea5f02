"""The layer built as `sam build` builds it (layers/common/Makefile's build-CommonLayer, wheels
from the package registry), then every function's handler imported from that artefact alone, as
the Lambda runtime puts it on the path: no virtualenv, no site-packages.

Built for the Python running the tests, so the artefact can be imported here; `sam build` builds
the same target for the runtime's Python (tests/unit/test_template.py checks they agree)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

from support_process import ROOT

IMPORT_FROM_LAYER = textwrap.dedent(
    """
    import importlib.util, sys
    site, handlers = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, site)
    for path in handlers:
        spec = importlib.util.spec_from_file_location("handler", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(module.lambda_handler), path
    import hookpost, psycopg, pydantic_core
    from hookpost.db.migrate import function_files, versioned_migrations
    for module in (hookpost, psycopg, pydantic_core):
        assert module.__file__.startswith(site), module.__file__
    assert psycopg.pq.__impl__ == "binary", psycopg.pq.__impl__
    assert versioned_migrations(), "no migrations in the layer"
    assert function_files(), "no function files in the layer"
    from hookpost.secrets_manager import PROXY_CA_BUNDLE
    assert PROXY_CA_BUNDLE.is_file(), "no CA bundle for RDS Proxy in the layer"
    """
)


def test_the_built_layer_holds_everything_the_functions_import(tmp_path: Path):
    machine = platform.machine()
    build = subprocess.run(
        [
            "make",
            "-C",
            str(ROOT / "layers" / "common"),
            "build-CommonLayer",
            f"ARTIFACTS_DIR={tmp_path}",
            f"PYTHON={sys.executable}",
            f"PYTHON_VERSION={sys.version_info.major}.{sys.version_info.minor}",
            f"PLATFORMS=manylinux2014_{machine} manylinux_2_28_{machine}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    site = tmp_path / "python"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["python"]
    assert not list((site / "hookpost").rglob("__pycache__"))

    handlers = sorted(str(p) for p in (ROOT / "functions").glob("*/app.py"))
    assert len(handlers) == 5
    # -I -S: neither the environment nor any site-packages, only the standard library.
    imported = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_FROM_LAYER, str(site), *handlers],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert imported.returncode == 0, imported.stderr
