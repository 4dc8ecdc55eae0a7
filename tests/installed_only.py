"""Run a command with only what `pip install -e .` installs importable.

The test venv also holds pytest and its dependencies (pygments among them), which hides a missing runtime
dependency: `snakemake --report` worked in the tests while it failed after a plain `pip install -e .` ("Python
package pygments must be installed to create reports"). :func:`environment` returns environment variables whose
``sitecustomize`` refuses to import any top-level module that only distributions outside actionflow's dependency
closure provide, so a test can run a documented command as a fresh user's install would.
"""
import os
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

SITECUSTOMIZE = '''\
import sys

BLOCKED = frozenset({blocked!r})


class _NotInstalled:
    """Stands for the distributions a plain `pip install -e .` would not have brought."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not installed by pip install -e .)", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
'''


def _normalize(name):
    return name.lower().replace("_", "-").replace(".", "-")


def dependency_closure(root="actionflow"):
    """Normalized names of ``root`` and every distribution it requires (with the extras asked for), recursively."""
    closure, pending = set(), [(root, frozenset())]
    while pending:
        name, extras = pending.pop()
        key = (_normalize(name), extras)
        if key in closure:
            continue
        closure.add(key)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requirements:
            requirement = Requirement(line)
            wanted = [""] + sorted(extras)
            if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in wanted):
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in closure}


def blocked_modules(root="actionflow"):
    """Top-level modules that only distributions outside the closure provide."""
    allowed = dependency_closure(root)
    blocked = set()
    for module, distributions in metadata.packages_distributions().items():
        if not any(_normalize(d) in allowed for d in distributions):
            blocked.add(module)
    # Snakemake imports every installed plugin it finds at start-up (the test extra's SLURM executor among them):
    # blocking one would fail where a fresh install simply has none, so plugins stay importable.
    blocked = {module for module in blocked if not module.startswith("snakemake_")}
    return blocked - set(sys.stdlib_module_names) - {"_distutils_hack", "pkg_resources", "setuptools"}


def environment(directory, root="actionflow", base=None):
    """``base`` (default os.environ) with a ``sitecustomize`` in ``directory`` first on PYTHONPATH."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=sorted(blocked_modules(root))))
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH", "")]))
    return env
