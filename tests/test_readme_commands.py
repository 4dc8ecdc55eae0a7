"""Every command the README (and docs/*.md) shows runs as written: snakemake commands dry-run (``-n``) in a copy
of the repository, ``python -m`` / ``torchrun`` commands run when every argument is concrete and cheap, else their
``--help`` runs and lists every option the command uses. Installs, the test suite itself and ``--report`` (which
needs a finished run) are only listed, with the reason."""
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
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$|…|\.\.\.|^\[|[<{]")  # URL_LIST, N, [--opt], …, <dataset>, {model}
NOT_RUN = {  # what a command starts with -> why the test does not run it
    "python3 -m venv": "creates a virtual environment and installs packages",
    "python -m pytest": "the test suite itself", ".venv/bin/python -m pytest": "the test suite itself",
    "pip ": "installs packages", "apt-get": "installs system packages",
}
CHEAP = ("train.recipe",)
COMMAND = re.compile(r"(snakemake|python3? -m|torchrun) ")  # a line of a ```text block that is a command  # modules whose concrete commands are run for real (no torch, no data)


def doc_commands(path):
    """Commands of a Markdown file: each line of a ```bash block (continuations joined, comments dropped) and each
    inline `snakemake …` / `python -m …` / `torchrun …` span that names more than the program."""
    text = path.read_text()
    commands = []
    for language, block in re.findall(r"```(bash|text)\n(.*?)```", text, re.S):
        # a ```text block is a synopsis or a layout: its lines that start with a command are commands (placeholders:
        # checked through --help); docs/'s `--8<--` includes are docs/examples/ files, run by tests/test_docs.py
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith(("#", "--8<--")) and (language == "bash" or COMMAND.match(line)):
                commands.append(line)
    for span in re.findall(r"`((?:snakemake|python3? -m|torchrun) [^`]+)`", text.replace("\n", " ")):
        commands.append(span.strip())
    return list(dict.fromkeys(commands))


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
    examples = yaml_blocks(DOCS)
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
        if len(tokens) == 1 or any("{" in t for t in tokens):
            pytest.skip("the program name or a template (results/{model}_…), not a command")
        tokens = [t.replace("<dataset>", "synthetic") if t.startswith("data/") else t for t in tokens]
        tokens = ["2" if t == "N" else t for t in tokens]  # --cores N
        result = run([str(Path(sys.executable).with_name("snakemake")), "-n", *tokens[1:]], checkout)
        assert result.returncode == 0, f"{command}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
        return
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


def test_the_extractor_sees_the_commands():
    commands = [c for _, c in ALL]
    assert "snakemake --cores 2 all" in commands and any(c.startswith("python -m prep download") for c in commands)
    for command in commands:  # Snakemake's --config / --configfile take every following word up to an option
        tokens = shlex.split(command) if command.startswith("snakemake") else []
        for at, token in enumerate(tokens):
            if token in ("--config", "--configfile"):
                words = next((tokens[at + 1:at + 1 + n] for n, t in enumerate(tokens[at + 1:]) if t.startswith("-")),
                             tokens[at + 1:])
                wrong = [w for w in words if ("=" not in w if token == "--config" else not w.endswith((".yaml", ".yml")))]
                assert not wrong, f"{command}: {token} swallows {wrong}; put targets before it or after --"
