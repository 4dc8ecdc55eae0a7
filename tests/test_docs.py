"""The docs: README.md (the front page) and docs/ (the reference, `mkdocs build --strict`). Every bash, python and
yaml example is a file under docs/examples/ that the pages pull in (``--8<--``) and a test runs:

- ``config/*.yaml``: config overlays, validated against the schema and planned (``snakemake -n all``) over
  config.yaml;
- ``*.sh``: run with bash in a checkout over a finished tiny run (tests/configs/tiny.yaml), every command as written
  except that ``snakemake`` plans (``--dry-run``): the runs themselves are tests/test_end_to_end.py's;
- ``*.py``: run with python in the same checkout;
- ``quickstart.sh`` and ``test.sh``, the README's two commands, install a virtual environment: .ci/run runs them as
  written on a fresh machine (checked here).

The README's own examples are copies of example files (GitHub shows no includes).
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import BIN, REPO, TINY, snakemake_executable

DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
RUN_BY_CI = ("quickstart.sh", "test.sh")
RUNNABLE = {"bash", "python", "yaml"}  # fenced blocks of these languages are examples; others (text, json) are not
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
INCLUDE = re.compile(r'^--8<-- "docs/examples/([^"]+)"$')


def pages():
    return sorted(DOCS.glob("*.md"))


def blocks(path):
    return FENCE.findall(path.read_text())


def examples(pattern):
    return sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob(pattern) if p.is_file())


def test_every_example_on_a_page_is_an_example_file():
    used = set()
    assert pages() and (REPO / "mkdocs.yml").is_file()
    for page in pages():
        for language, body in blocks(page):
            assert language in RUNNABLE | {"text", "json"}, f"{page.name}: a ```{language} block (say text or json)"
            if language in RUNNABLE:
                match = INCLUDE.match(body.strip())
                assert match, f"{page.name}: an inline ```{language} example; put it in docs/examples/ and include it"
                assert (EXAMPLES / match.group(1)).is_file(), f"{page.name}: {match.group(1)} is not in docs/examples"
                used.add(match.group(1))
    readme = REPO / "README.md"
    texts = {name: (EXAMPLES / name).read_text().strip() for name in examples("*")}
    for language, body in blocks(readme):
        if language in RUNNABLE:
            copies = [name for name, text in texts.items() if text == body.strip()]
            assert copies, f"README.md: this ```{language} example is no example file's copy:\n{body}"
            used.update(copies)
    used.update(name for name in texts if any(f"docs/examples/{name}" in text for text in texts.values()))
    assert set(texts) == used, f"example files no page shows (or example uses): {sorted(set(texts) - used)}"
    assert len(readme.read_text().splitlines()) <= 200


def test_the_two_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    for name in RUN_BY_CI:
        assert f"bash docs/examples/{name}" in ci, f".ci/run does not run docs/examples/{name}"
    assert "mkdocs build --strict" in ci


def test_the_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra (pip install -e .[docs]) builds the site")
    pytest.importorskip("pymdownx", reason="the docs extra (pip install -e .[docs]) builds the site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()


def run_env():
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("name", examples("config/*.yaml"))
def test_config_examples_validate_and_plan(name, tmp_path):
    import jsonschema

    from prep.datasets.schema import config_schema
    from train.recipe import load_config

    jsonschema.validate(load_config([EXAMPLES / name]), config_schema())
    shutil.copy(REPO / "config.yaml", tmp_path)  # merged under the overlay, as from the repository root
    result = subprocess.run([snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(tmp_path), "--configfile", str(EXAMPLES / name), "-n", "--cores", "8", "all"],
                            capture_output=True, text=True, env=run_env(), cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def checkout(tiny_run, tmp_path_factory):
    """A checkout (the code, linked) whose config.yaml is the tiny configuration and whose data / work / results
    are a finished tiny run's: where the shell and python examples run, as from a repository root."""
    from train.recipe import load_config

    root = tmp_path_factory.mktemp("checkout")
    for part in ("Snakefile", "workflow", "envs", "prep", "train", "tests", "docs"):
        (root / part).symlink_to(REPO / part)
    for part in ("data", "work", "results", "logs", "report"):
        if (tiny_run / part).exists():
            (root / part).symlink_to(tiny_run / part)
    (root / "config.yaml").write_text(yaml.safe_dump(load_config([TINY])))
    return root


SHELL = 'set -euo pipefail\nsnakemake() { command snakemake --dry-run "$@"; }  # plans: the runs are the tests\'\n'


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in examples("*.sh") if n not in RUN_BY_CI])
def test_shell_examples_run(name, checkout):
    script = checkout / f".example_{name.replace('/', '_')}"
    script.write_text(SHELL + (EXAMPLES / name).read_text())
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=checkout, env=run_env(),
                            timeout=900)
    assert result.returncode == 0, f"{name}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", examples("*.py"))
def test_python_examples_run(name, checkout):
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, cwd=checkout,
                            env=run_env(), timeout=900)
    assert result.returncode == 0, f"{name}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"

