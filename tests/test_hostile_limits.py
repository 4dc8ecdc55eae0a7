"""Issue 23, names, config and command-line values: every name we make fits the file system, a name that cannot be
stored costs only its own video or URL, YAML cannot blow up, and bad values stop at the argument parser in one
line."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prep.base import atomic, names
from prep.base.media import encode_video

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(300)


def prep(*args, cwd=None, timeout=300, memory=None):
    """`python -m prep …` in its own process (``memory``: its address-space limit in bytes)."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "prep", *map(str, args)], capture_output=True, text=True,
                          errors="replace", cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout,
                          preexec_fn=limit if memory else None)


def one_line_error(result, *fragments):
    """Exit 2 and one short line on stderr naming each fragment (no traceback, no dump)."""
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err[-3000:])
    assert err.startswith("error: ") and err.count("\n") == 1 and len(err) < 1500, err[-3000:]
    for fragment in fragments:
        assert fragment in err, err


def read_report(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["video_id"]: row for row in csv.DictReader(handle)}


# ---------------------------------------------------------------------------------------------------------------------
# 2. names: every temporary and output name fits NAME_MAX


@pytest.mark.parametrize("name", ["a" * 300, "é" * 200, "x" * 254, "v" * 250 + ".mp4"])
def test_every_name_we_make_fits(tmp_path, name):
    assert names.name_bytes(names.fit(name, 20)) + 20 <= names.NAME_MAX
    assert names.fit(name, 20) == names.fit(name, 20) and names.fit(name, 20) != names.fit(name + "b", 20)
    for kind in names.BOOKKEEPING_KINDS:
        made = names.bookkeeping(name, kind)
        assert names.name_bytes(made) <= names.NAME_MAX and names.is_bookkeeping(made)
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / names.fit(name)
    with atomic.atomic_file(path, "w") as handle:  # the temporary .NAME.RANDOM.tmp fits too
        handle.write("x")
    with atomic.atomic_directory(tmp_path / "d" / names.fit("d" + name)) as folder:
        (folder / "f").write_text("y")
    left = tmp_path / "d" / f"{atomic.temporary_prefix(names.fit(name))}killed.tmp"
    left.write_text("a killed run's temporary")
    atomic.remove_own_temporaries(tmp_path / "d", [names.fit(name)])
    assert sorted(os.listdir(tmp_path / "d")) == sorted([names.fit(name), names.fit("d" + name)])


@pytest.fixture
def long_named_videos(tmp_path):
    """SRC/cls/{ok.avi, <250 a>.avi (storable: its temporaries were not), <251 b>.avi (no room for '.pack')}."""
    src = tmp_path / "videos"
    (src / "cls").mkdir(parents=True)
    clip = np.random.RandomState(0).randint(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    encode_video(clip, src / "cls" / "ok.avi")
    os.link(src / "cls" / "ok.avi", src / "cls" / ("a" * 250 + ".avi"))
    os.link(src / "cls" / "ok.avi", src / "cls" / ("b" * 251 + ".avi"))
    return src


@pytest.mark.parametrize("verb,extra,count", [("frames", [], "n_frames"), ("frames", ["--pack"], "n_frames"),
                                              ("flow", ["--algorithm", "farneback"], "n_flow"),
                                              ("reencode", [], "n_frames")])
def test_long_video_names_are_stored_or_quarantined_and_the_shard_goes_on(long_named_videos, tmp_path, verb, extra,
                                                                        count):
    """The hidden temporary of a 250-character name passed 255 bytes: the whole shard crashed."""
    out, report = tmp_path / "out", tmp_path / "report.csv"
    result = prep(verb, long_named_videos, out, "--report", report, *extra)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    rows = read_report(report)
    assert rows["cls/ok"]["status"] == "done"
    assert rows["cls/" + "a" * 250]["status"] == "done", rows["cls/" + "a" * 250]
    expected = {"frames": 6, "flow": 5, "reencode": 6}[verb]
    assert rows["cls/" + "a" * 250][count] == str(expected)
    long_b = rows["cls/" + "b" * 251]["status"]
    if extra != ["--pack"]:  # a folder of 251 bytes fits, and so does 251 + ".mp4"
        assert long_b == "done"
    else:
        assert long_b.startswith("quarantined: its name is 256 bytes with '.pack', over the file system's limit of "
                                 "255"), long_b
    assert not [p for p in (out / "cls").iterdir() if p.name.startswith(".")]


def test_download_with_an_unstorable_url_name_reports_it_and_goes_on(tmp_path):
    """A 300-character URL basename crashed `prep download` before missing.csv was written."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_text("fine\n")
    (src / "folder.txt").write_text("x\n")
    long_url = (src / ("c" * 300 + ".txt")).as_uri()
    out = tmp_path / "out"
    (out / "folder.txt").mkdir(parents=True)  # the target name is taken by a folder
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{(src / 'good.txt').as_uri()}\n{long_url}\n{(src / 'folder.txt').as_uri()}\n")
    result = prep("download", urls, out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "good.txt").read_text() == "fine\n"
    with open(out / "missing.csv", newline="", encoding="utf-8") as handle:
        missing = {row["url"]: row["reason"] for row in csv.DictReader(handle)}
    assert "309 bytes with '.part', over the file system's limit of 255" in missing[long_url]
    assert "a folder" in missing[(src / "folder.txt").as_uri()]
    assert (out / "folder.txt").is_dir()


# ---------------------------------------------------------------------------------------------------------------------
# 6. command-line values: checked at the argument parser, one line, before any work


def module_run(module, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          errors="replace", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)


def parser_error(result, *fragments):
    """Exit 2, one line, from the argument parser (no usage block, no traceback)."""
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err[-3000:])
    assert err.startswith("error: argument ") and err.count("\n") == 1 and "Traceback" not in err, err[-3000:]
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def videos(tmp_path):
    (tmp_path / "videos" / "cls").mkdir(parents=True)
    return tmp_path / "videos"


@pytest.mark.parametrize("args,fragments", [
    (["--short-side", "-5"], ["--short-side", "-5 is outside 1..8192"]),
    (["--short-side", "0"], ["--short-side", "0 is outside 1..8192"]),
    (["--size", "0x0"], ["--size", "0x0: each side must be 1..8192"]),
    (["--size", "99999x99999"], ["--size", "99999x99999: each side must be 1..8192"]),
    (["--size", "-3x4"], ["--size"]),
    (["--size", "axb"], ["--size", "expected WIDTHxHEIGHT"]),
    (["--new-width", "0", "--new-height", "10"], ["--new-width"]),
    (["--workers", "0"], ["--workers", "0 is below 1"]),
    (["--num-shards", "0"], ["--num-shards"]),
    (["--shard", "-1"], ["--shard"]),
    (["--quality", "101"], ["--quality"]),
])
def test_frames_values_are_checked_at_the_parser(videos, tmp_path, args, fragments):
    """--short-side -5 / --size 0x0 were OpenCV errors, --size 99999x99999 tried 30 GB."""
    parser_error(prep("frames", videos, tmp_path / "out", *args), *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb,args,fragments", [
    ("flow", ["--bound", "nan"], ["--bound", "not a finite number"]),
    ("flow", ["--bound", "0"], ["--bound", "must be above 0"]),
    ("reencode", ["--crf", "99"], ["--crf", "outside 0..51"]),
    ("reencode", ["--size", "99999x10"], ["--size"]),
])
def test_other_stages_check_their_values_too(videos, tmp_path, verb, args, fragments):
    parser_error(prep(verb, videos, tmp_path / "out", *args), *fragments)


def test_extract_into_an_existing_file_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    import zipfile
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.txt", "x")
    (tmp_path / "existing_file").write_text("keep")
    parser_error(prep("extract", archive, tmp_path / "existing_file"), "existing_file: is a file; an output folder")
    assert (tmp_path / "existing_file").read_text() == "keep"
    parser_error(prep("extract", tmp_path / "absent.zip", tmp_path / "out"), "absent.zip: no such file")
    parser_error(prep("extract", archive, tmp_path / "out", "--max-ratio", "-1"), "--max-ratio")


def test_fifos_and_devices_are_refused_as_inputs(tmp_path):
    """`train.predict` on a FIFO hung for ever (the reader waits for a writer)."""
    fifo = tmp_path / "clip.avi"
    os.mkfifo(fifo)
    checkpoint = tmp_path / "final.pt"
    checkpoint.write_bytes(b"not read")
    parser_error(module_run("train.predict", fifo, "--checkpoint", checkpoint, timeout=60), "clip.avi: is a FIFO")
    parser_error(module_run("train.predict", tmp_path, "--checkpoint", fifo, timeout=60), "--checkpoint",
                 "is a FIFO")
    parser_error(prep("extract", fifo, tmp_path / "out", timeout=60), "is a FIFO")
    parser_error(prep("download", "/dev/zero", tmp_path / "out", timeout=60), "/dev/zero: is a device")
    parser_error(prep("frames", "/dev/null", tmp_path / "out", timeout=60), "/dev/null: is a device")
    parser_error(module_run("train.launch", "--nnodes", "0", "--", "-m", "train.train"), "--nnodes")


def test_download_into_a_file_is_refused(tmp_path):
    (tmp_path / "urls.txt").write_text("file:///nothing.txt\n")
    (tmp_path / "out").write_text("a file")
    parser_error(prep("download", tmp_path / "urls.txt", tmp_path / "out"), "is a file; an output folder")


# ---------------------------------------------------------------------------------------------------------------------
# 5. config: bounded alias expansion, errors that name the key


def bomb_entries(levels=9, kind="list"):
    """The entries ``a0`` … of an alias bomb: ``levels`` levels of nine aliases each, 9**levels values."""
    if kind == "list":
        entries = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        return entries + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    entries = ["a0: &a0 {" + ", ".join(f"x{j}: 1" for j in range(9)) + "}"]
    return entries + [f"a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(9)) + "}"
                      for i in range(1, levels)]


def alias_bomb(path, levels=9, kind="list"):
    """A mapping ``bomb`` of :func:`bomb_entries` in a file of a few hundred bytes."""
    path.write_text("bomb:\n" + "".join(f"  {entry}\n" for entry in bomb_entries(levels, kind)))
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_an_alias_bomb_is_refused_before_it_expands(tmp_path, memory_limit, kind):
    from prep.base import config

    bomb = alias_bomb(tmp_path / "bomb.yaml", kind=kind)
    assert bomb.stat().st_size < 2000
    with pytest.raises(config.ConfigError, match=r"bomb.yaml: key 'bomb.a8' holds \d{3},\d{3},\d{3} values once its "
                                                 r"YAML aliases are expanded \(at most 200,000"):
        config.load_yaml(bomb)
    fine = tmp_path / "fine.yaml"
    fine.write_text("base: &b {lr: 0.1, epochs: 3}\nrun: {<<: *b, epochs: 5}\nlist: [*b, *b]\n")
    assert config.load_yaml(fine) == {"base": {"lr": 0.1, "epochs": 3}, "run": {"lr": 0.1, "epochs": 5},
                                      "list": [{"lr": 0.1, "epochs": 3}] * 2}


def test_a_recursive_alias_a_huge_file_and_a_fifo_are_refused(tmp_path, memory_limit):
    from prep.base import config

    (tmp_path / "loop.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(config.ConfigError, match=r"key 'a.1' contains itself"):
        config.load_yaml(tmp_path / "loop.yaml")
    (tmp_path / "big.yaml").write_text("x: " + "y" * (config.MAX_BYTES + 1) + "\n")
    with pytest.raises(config.ConfigError, match=r"more than a configuration may hold"):
        config.load_yaml(tmp_path / "big.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(config.ConfigError, match=r"not a regular file"):
        config.load_yaml(tmp_path / "fifo.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(config.ConfigError, match=r"bad.yaml: not valid YAML \(line 2, column 2\)"):
        config.load_yaml(tmp_path / "bad.yaml")


@pytest.mark.timeout(120)
def test_train_recipe_refuses_a_bomb_as_configfile_in_one_line(tmp_path):
    bomb = alias_bomb(tmp_path / "bomb.yaml", kind="dict")
    result = module_run("train.recipe", "tsn", "synthetic", "rgb", "--configfile", bomb, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "key 'bomb.a8'" in result.stderr, \
        result.stderr[-2000:]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("overlay,key", [
    ("list bomb", "bomb.a8"),
    ("split: {big: [" + ", ".join(["1234567890"] * 20000) + "]}\n", "split"),
    ("recipes: {tsn: {arch: 17}}\n", "recipes.tsn"),
])
def test_snakemake_config_errors_name_the_key_and_never_dump_the_config(tmp_path, overlay, key):
    """A list alias bomb as --configfile ran Snakemake for minutes into gigabytes (the schema error printed it);
    any schema error printed the whole offending value."""
    from conftest import snakemake

    import yaml
    from conftest import TINY

    path = tmp_path / "overlay.yaml"
    if overlay == "list bomb":
        alias_bomb(path)
    else:
        path.write_text(overlay)
    path.write_text(TINY.read_text() + "\n" + path.read_text())  # --configfile replaces config.yaml here
    assert yaml.safe_load(path.read_text())
    started = __import__("time").time()
    result = snakemake(tmp_path / "work", "-n", configfile=path, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"key '{key}" in output and len(output) < 5000, output[-5000:]
    assert __import__("time").time() - started < 120


def inline_bomb(levels=9, kind="dict"):
    """:func:`alias_bomb`'s mapping ``bomb`` as one line of flow YAML (a ``--config bomb=…`` value)."""
    return "{" + ", ".join(bomb_entries(levels, kind)) + "}"


def limited_snakemake(workdir, *args, memory=3 << 30, timeout=60):
    """`snakemake --snakefile Snakefile --directory workdir …` under an address-space limit: a bomb that gets
    through is a MemoryError (or the timeout), not a dead host. ``(result, seconds)``."""
    import time

    from conftest import BIN, snakemake_executable

    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    result = subprocess.run([snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory",
                             str(workdir), *map(str, args)], capture_output=True, text=True, errors="replace",
                            env=env, timeout=timeout, preexec_fn=limit)
    return result, time.monotonic() - started


def bomb_report(result, seconds, source):
    """Snakemake stopped at once, its report naming the source and key of the bomb on one line, nothing dumped."""
    output = result.stdout + result.stderr
    assert result.returncode != 0 and seconds < 30, (seconds, output[-3000:])
    line = f"{source}: key 'bomb.a8' holds "
    assert any(text.startswith(line) and text.endswith("an alias bomb?)") for text in output.splitlines()), \
        output[-3000:]
    assert len(output) < 2000, output[-3000:]


@pytest.mark.timeout(180)
def test_snakemake_stops_a_bomb_in_config_yaml_before_merging_it(tmp_path):
    """The Snakefile's `configfile: "config.yaml"` merged a bomb of mappings (9**9 values in 1 KB) into a copy of
    each repeated mapping: 95 s and past 3.6 GB (no limit: tens of GB). Checked first, it stops in a second or two;
    a usable config.yaml still plans."""
    from conftest import TINY

    work = tmp_path / "work"
    work.mkdir()
    alias_bomb(work / "config.yaml", kind="dict")
    (work / "config.yaml").write_text(TINY.read_text() + "\n" + (work / "config.yaml").read_text())
    bomb_report(*limited_snakemake(work, "-n"), f"config file {work / 'config.yaml'}")
    (work / "config.yaml").write_text(TINY.read_text())
    result, _ = limited_snakemake(work, "-n", timeout=120)
    assert result.returncode == 0 and "This was a dry-run" in result.stdout, result.stderr[-3000:]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("option", ["--configfile", "--configfiles", "--config"])
def test_snakemake_names_the_file_or_value_of_a_list_bomb(tmp_path, option):
    """A bomb of lists reaches the Snakefile shared (Snakemake's merge keeps lists whole): it stops there, naming
    the --configfile file or the --config key that holds it (it stopped at the schema check, naming neither)."""
    from conftest import TINY

    bomb = alias_bomb(tmp_path / "bomb.yaml")
    if option == "--config":
        args, source = ["--configfile", TINY, "--config", f"bomb={inline_bomb(kind='list')}"], "--config"
    else:
        args, source = [option, TINY, bomb], f"config file {bomb}"
    bomb_report(*limited_snakemake(tmp_path, *args, "-n"), source)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("source", ["--configfile", "--configfiles", "--config", "config.yaml"])
def test_check_config_stops_every_bomb_before_snakemake_reads_it(tmp_path, source):
    """Snakemake merges --configfile files and --config values itself, copying every mapping an alias repeats,
    before the workflow runs (9 levels of mappings: past 3.7 GB in 86 s, then dead): `python -m prep check-config`
    with the same options reads them bounded first, one line naming the file; a usable configuration passes."""
    from conftest import TINY

    bomb = alias_bomb(tmp_path / "bomb.yaml", kind="dict")
    work = tmp_path / "work"
    work.mkdir()
    args, named = {
        "--configfile": (["--configfile", bomb], f"config file {bomb}"),
        "--configfiles": (["--configfiles", TINY, bomb, "--directory", work], f"config file {bomb}"),
        "--config": (["--configfile", TINY, "--config", "split=1", f"bomb={inline_bomb()}"], "--config"),
        "config.yaml": (["--directory", work], f"config file {work / 'config.yaml'}"),
    }[source]
    if source == "config.yaml":
        bomb.rename(work / "config.yaml")
    import time

    started = time.monotonic()
    result = prep("check-config", *args, memory=3 << 30, timeout=30)
    one_line_error(result, f"{named}: key 'bomb.a8' holds ", "an alias bomb?")
    assert time.monotonic() - started < 30
    (tmp_path / "fine.json").write_text('{\n\t"split": 2,\n\t"fusion": {"rgb": 1, "flow": 2}\n}\n')
    fine = prep("check-config", "--configfile", TINY, tmp_path / "fine.json", "--config", "split=1",
                "train={threads: 2}", "--directory", REPO, timeout=30)
    assert fine.returncode == 0 and not fine.stderr, fine.stderr
