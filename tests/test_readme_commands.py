"""Every command the README and the docs pages show in their text runs as written: inline `snakemake …` spans
dry-run (``-n``) in a copy of the repository, inline `python -m …` / `torchrun …` spans run when every argument is
concrete and cheap, else their ``--help`` runs and lists every option the span uses. (The fenced examples are
docs/examples/ files that tests/test_docs.py runs; here every command of those files, and of the spans, is checked
for words that Snakemake's many-valued options would swallow: `--config a=b results/x.json` makes the target a
config entry.) Fragments — a program alone, a template (`results/{model}_…`), a span ending in an option — are
listed as skipped, with the reason."""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLE_SCRIPTS = sorted((REPO / "docs" / "examples").glob("*.sh"))
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$|…|\.\.\.|^\[|[<{]")  # URL_LIST, N, [--opt], …, <dataset>, {model}
NOT_RUN = {  # what a command starts with -> why the test does not run it
    "python3 -m venv": "creates a virtual environment and installs packages",
    "python -m pytest": "the test suite itself", ".venv/bin/python -m pytest": "the test suite itself",
    "pip ": "installs packages", "apt-get": "installs system packages",
}
CHEAP = ("train.recipe",)  # modules whose concrete commands are run for real (no torch, no data)
# Snakemake options that take every following word up to the next option, and what each word must look like
MANY_VALUED = {"--config": lambda w: "=" in w, "--configfile": lambda w: w.endswith((".yaml", ".yml", ".json")),
               "--resources": lambda w: "=" in w, "--set-threads": lambda w: "=" in w,
               "--set-resources": lambda w: "=" in w}


def doc_commands(path):
    """The inline `snakemake …` / `python -m …` / `torchrun …` spans of a Markdown file."""
    text = path.read_text()
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # fenced blocks: docs/examples files
    spans = re.findall(r"`((?:snakemake|python3? -m|torchrun) [^`]+)`", text.replace("\n", " "))
    return list(dict.fromkeys(span.strip() for span in spans))


def script_commands(path):
    """The command lines of an example script (continuations joined, comments dropped)."""
    lines = []
    for line in path.read_text().replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def yaml_blocks(paths):
    """{file name: text} of ```yaml blocks whose first line is `# NAME.yaml` (cluster.yaml)."""
    files = {}
    for path in paths:
        for block in re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S):
            first = block.splitlines()[0].strip()
            if re.fullmatch(r"# [\w.-]+\.ya?ml", first):
                files[first[2:]] = block
    return files


ALL = [(path.relative_to(REPO).as_posix(), command) for path in DOCS for command in doc_commands(path)]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """The tracked files in a scratch directory (no results, no .snakemake), plus the overlays the docs name."""
    root = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    examples = {**{p.name: p.read_text() for p in sorted((REPO / 'docs' / 'examples' / 'config').glob('*.yaml'))},
                **yaml_blocks(DOCS)}
    # the README's overlay example (`recipes: {tsm: {kinetics400: {epochs: 30}}}`) as my.yaml; others from their block
    examples.setdefault("my.yaml", "recipes: {tsm: {kinetics400: {epochs: 30}}}\n")
    examples.setdefault("gpus.yaml", "train: {gpu: true, nproc_per_node: 4}\n")
    for name, text in examples.items():
        yaml.safe_load(text)
        (root / name).write_text(text)
    return root


def skipped(command):
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


def concrete(tokens, root):
    return not any(PLACEHOLDER.search(t) for t in tokens)


def run(argv, cwd, timeout=300):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("doc, command", ALL, ids=[f"{d}:{c[:60]}" for d, c in ALL])
def test_documented_command_runs(doc, command, checkout):
    why = skipped(command)
    if why:
        pytest.skip(why)
    tokens = shlex.split(command)
    if tokens[0] == "snakemake":
        if "--report" in tokens:
            pytest.skip("--report needs a finished run (the end-to-end test builds the report)")
        if len(tokens) == 1 or any("{" in t for t in tokens) or tokens[-1].startswith("-") and tokens[-1] != "-n":
            pytest.skip("the program name, a template (results/{model}_…) or a fragment ending in an option")
        tokens = [t.replace("<dataset>", "synthetic") if t.startswith("data/") else t for t in tokens]
        tokens = ["2" if t == "N" else t for t in tokens]  # --cores N
        result = run([str(Path(sys.executable).with_name("snakemake")), "-n", *tokens[1:]], checkout)
        assert result.returncode == 0, f"{command}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        return
    fragment = tokens[-1].startswith("-") and tokens[-1] not in ("--help", "-h")
    if fragment or any(re.search(r"[<{]", t) for t in tokens[:3]):
        pytest.skip("a fragment ending in an option, or a template (train.<entry>)")
    if tokens[0] == "torchrun":  # what follows -m is the module; torchrun's own options are torch's
        if "-m" not in tokens:
            pytest.skip("torchrun alone, not a command")
        command = shlex.join(tokens[tokens.index("-m"):])
        tokens = [sys.executable, "-m", *tokens[tokens.index("-m") + 1:]]
    elif tokens[0] in ("python", "python3") and tokens[1] != "-m":  # a script: its --help lists the options
        result = run([sys.executable, tokens[1], "--help"], checkout)
        assert result.returncode == 0, f"{command}\n{result.stderr[-1500:]}"
        assert_options_listed(command, result.stdout, tokens[1])
        return
    else:
        assert tokens[:2] in (["python", "-m"], ["python3", "-m"]), command
        tokens = [sys.executable, *tokens[1:]]
    module = tokens[2]
    if module in CHEAP and concrete(tokens[3:], checkout):
        result = run(tokens, checkout)
        assert result.returncode == 0, f"{command}\n{result.stderr[-1500:]}"
        return
    head = []
    for token in tokens[3:]:  # up to the first placeholder: the module, its verb and concrete arguments
        if PLACEHOLDER.search(token):
            break
        head.append(token)
    result = run([*tokens[:3], *head, "--help"], checkout)
    assert result.returncode == 0, f"{command}\n{result.stderr[-1500:]}"
    assert_options_listed(command, result.stdout, f"{' '.join(tokens[1:3])} {' '.join(head)}")


def assert_options_listed(command, help_text, program):
    options = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", command)) - {"--help"}
    missing = [o for o in sorted(options) if o not in help_text]
    assert not missing, f"{command}: options not in `{program} --help`: {missing}"


def test_no_target_is_swallowed_by_a_many_valued_option():
    commands = [c for _, c in ALL] + [c for path in EXAMPLE_SCRIPTS for c in script_commands(path)]
    assert any(c.startswith("snakemake") for c in commands) and any("python -m" in c for c in commands)
    for command in commands:
        for part in command.split("&&"):
            tokens = shlex.split(part.strip(), comments=True) if "snakemake" in part else []
            for at, token in enumerate(tokens):
                if token in MANY_VALUED:
                    words = next((tokens[at + 1:at + 1 + n] for n, t in enumerate(tokens[at + 1:])
                                  if t.startswith("-")), tokens[at + 1:])
                    wrong = [w for w in words if not MANY_VALUED[token](w)]
                    assert not wrong, f"{command}: {token} swallows {wrong}; put targets before it or after --"
