"""prep.base.archives: normal extraction of zip / tar / rar, nested archives, and refusal of malicious members."""
import io
import os
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from prep.base import archives
from prep.base.errors import UserError
from prep.__main__ import main

RAR_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "rar"
if not RAR_FIXTURES.is_dir():
    RAR_FIXTURES = Path("/work/shared/fixtures/rar")


def have_rar():
    try:
        import rarfile  # noqa: F401
    except ImportError:
        return False
    return bool(archives.rar_tools())


needs_rar = pytest.mark.skipif(not RAR_FIXTURES.is_dir() or not have_rar(),
                               reason="RAR fixtures, rarfile or a RAR tool (unar / bsdtar) missing")

ODD = "brush_hair & (Ann's) !;,+.avi"


# ---------------------------------------------------------------------------------------------------------------------
# builders


def make_zip(path, entries):
    """entries: (name, bytes) files, (name/, None) dirs, (name, ('symlink', target))."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            if isinstance(data, tuple):
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, data[1])
            elif data is None:
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return path


def make_tar(path, entries, mode="w"):
    """entries: (name, bytes) files, (name, ('dir',)), (name, ('symlink'|'hardlink', target)), (name, ('fifo',)),
    (name, ('chr',)), (name, ('blk',))."""
    with tarfile.open(path, mode) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                kind = data[0]
                info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE}[kind]
                if kind in ("symlink", "hardlink"):
                    info.linkname = data[1]
                if kind == "dir":
                    info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def sandbox(tmp_path):
    """A sentinel directory around the target: nothing may appear in it but the target."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("keep")
    return sentinel, sentinel / "out"


def assert_nothing_written(sentinel, out):
    assert sorted(p.name for p in sentinel.iterdir()) in (["keep.txt"], ["keep.txt", "out"])
    if out.exists():
        assert list(out.iterdir()) == []
    for payload in ("evil.txt", "evil_abs.txt", "pwned.txt"):
        assert not list(sentinel.parent.rglob(payload))
    assert not os.path.exists("/tmp/evil_abs.txt")


# ---------------------------------------------------------------------------------------------------------------------
# normal extraction


def test_zip_extracts_and_rerun_skips(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("top/", None), ("top/" + ODD, b"video"), ("top/sub/x.txt", b"x"),
                                            ("top/link", ("symlink", "sub/x.txt")), ("readme.txt", b"r")])
    out = tmp_path / "out"
    marker = archives.extract_archive(archive, out)
    assert (out / "top" / ODD).read_bytes() == b"video"
    assert os.readlink(out / "top" / "link") == "sub/x.txt" and (out / "top" / "link").read_bytes() == b"x"
    assert marker.is_file() and sorted(p.name for p in out.iterdir()) == [".a.zip.extracted", "readme.txt", "top"]
    (out / "readme.txt").write_bytes(b"changed")
    archives.extract_archive(archive, out)  # skipped: marker matches
    assert (out / "readme.txt").read_bytes() == b"changed"
    archives.extract_archive(archive, out, force=True)
    assert (out / "readme.txt").read_bytes() == b"r"


@pytest.mark.parametrize("mode,suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"),
                                         ("w:xz", ".tar.xz")])
def test_tar_variants_extract(tmp_path, mode, suffix):
    archive = make_tar(tmp_path / f"k400_part{suffix}", [
        ("abseiling", ("dir",)), ("abseiling/a_000001_000011.mp4", b"m" * 100),
        ("air drumming/b.mp4", b"n"), ("abseiling/same.mp4", ("hardlink", "abseiling/a_000001_000011.mp4")),
        ("abseiling/rel", ("symlink", "../air drumming/b.mp4"))], mode=mode)
    out = tmp_path / "out"
    archives.extract_archive(archive, out)
    assert (out / "abseiling" / "a_000001_000011.mp4").read_bytes() == b"m" * 100
    assert (out / "abseiling" / "same.mp4").read_bytes() == b"m" * 100
    assert (out / "abseiling" / "rel").read_bytes() == b"n"
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_two_archives_merge_into_one_dir(tmp_path):
    a = make_tar(tmp_path / "p1.tar", [("train/x/1.mp4", b"1")])
    b = make_tar(tmp_path / "p2.tar", [("train/x/2.mp4", b"2"), ("train/y/3.mp4", b"3")])
    out = tmp_path / "out"
    archives.extract_archive(a, out)
    archives.extract_archive(b, out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mp4")) == ["train/x/1.mp4", "train/x/2.mp4",
                                                                           "train/y/3.mp4"]


@needs_rar
@pytest.mark.parametrize("fixture,files", [
    ("rar3-solid.rar", {"stest1.txt", "stest2.txt"}),
    ("rar5-solid.rar", {"stest1.txt", "stest2.txt"}),
    ("unicode.rar", {"уииоотивл.txt", "𝐀𝐁𝐁𝐂.txt"}),
])
def test_rar_extracts(tmp_path, fixture, files):
    out = tmp_path / "out"
    archives.extract_archive(RAR_FIXTURES / fixture, out)
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == files
    assert all((out / name).stat().st_size > 0 for name in files)


@needs_rar
@pytest.mark.parametrize("tool,fixture", [("bsdtar", "rar5-solid.rar"), ("unar", "rar3-solid.rar"),
                                          ("bsdtar", "rar3-solid.rar")])
def test_each_rar_tool_or_a_clear_failure(tmp_path, monkeypatch, tool, fixture):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")
    monkeypatch.setattr(archives, "rar_tools", lambda: [tool])
    out = tmp_path / "out"
    if (tool, fixture) == ("bsdtar", "rar3-solid.rar"):  # libarchive cannot unpack solid RAR 3
        with pytest.raises(UserError, match="no RAR tool could extract it.*apt-get install unar"):
            archives.extract_archive(RAR_FIXTURES / fixture, out)
        assert not out.exists()
    else:
        archives.extract_archive(RAR_FIXTURES / fixture, out)
        assert (out / "stest2.txt").stat().st_size == 2048


def test_rar_without_tool_names_the_package(tmp_path, monkeypatch):
    pytest.importorskip("rarfile")
    monkeypatch.setattr(archives, "rar_tools", lambda: [])
    with pytest.raises(UserError, match="apt-get install unar"):
        archives.extract_archive(RAR_FIXTURES / "rar5-solid.rar", tmp_path / "out")


def test_nested_archives_go_into_folders_named_after_them(tmp_path):
    inner_zip = make_zip(tmp_path / "brush_hair.zip", [("brush_hair/", None), ("brush_hair/" + ODD, b"v1")])
    inner_tar = make_tar(tmp_path / "cartwheel.tar", [("c (1).avi", b"v2")])
    entries = [("brush_hair.zip", inner_zip.read_bytes()), ("cartwheel.tar", inner_tar.read_bytes())]
    if have_rar():
        entries.append(("stest.rar", (RAR_FIXTURES / "rar5-solid.rar").read_bytes()))
    outer = make_zip(tmp_path / "hmdb51_org.zip", entries)
    out = tmp_path / "out"
    archives.extract_archive(outer, out, nested=True)
    assert (out / "brush_hair" / ODD).read_bytes() == b"v1"  # the inner folder of the same name is lifted
    assert (out / "cartwheel" / "c (1).avi").read_bytes() == b"v2"
    assert not list(out.glob("*.zip")) and not list(out.glob("*.tar")) and not list(out.rglob("*.partial"))
    if have_rar():
        assert (out / "stest" / "stest1.txt").is_file() and not (out / "stest.rar").exists()


def test_without_nested_inner_archives_stay(tmp_path):
    inner = make_tar(tmp_path / "cartwheel.tar", [("c.avi", b"v")])
    outer = make_zip(tmp_path / "o.zip", [("cartwheel.tar", inner.read_bytes())])
    archives.extract_archive(outer, tmp_path / "out")
    assert (tmp_path / "out" / "cartwheel.tar").is_file()


# ---------------------------------------------------------------------------------------------------------------------
# malicious archives


@pytest.mark.parametrize("entries,member", [
    ([("ok.txt", b"fine"), ("../evil.txt", b"x")], "../evil.txt"),
    ([("/tmp/evil_abs.txt", b"x")], "/tmp/evil_abs.txt"),
    ([("a/../../evil.txt", b"x")], "a/../../evil.txt"),
    ([("..\\evil.txt", b"x")], "..\\evil.txt"),
    ([("C:/evil.txt", b"x")], "C:/evil.txt"),
    ([("evil_link", ("symlink", "../../")), ("x.txt", b"x")], "evil_link"),
    ([("d", ("symlink", "sub")), ("sub/", None), ("d/evil.txt", b"x")], "d/evil.txt"),
])
def test_malicious_zip_is_refused(sandbox, entries, member):
    sentinel, out = sandbox
    archive = make_zip(sentinel.parent / "evil.zip", entries)
    with pytest.raises(archives.UnsafeArchiveError, match=re.escape(f"evil.zip: refusing member {member!r}")):
        archives.extract_archive(archive, out)
    assert_nothing_written(sentinel, out)


@pytest.mark.parametrize("entries,member", [
    ([("ok.txt", b"fine"), ("../evil.txt", b"x")], "../evil.txt"),
    ([("/tmp/evil_abs.txt", b"x")], "/tmp/evil_abs.txt"),
    ([("up", ("symlink", "..")), ("up/evil.txt", b"x")], "up"),
    ([("abs", ("symlink", "/tmp")), ("abs/evil.txt", b"x")], "abs"),
    ([("hl", ("hardlink", "../keep.txt"))], "hl"),
    ([("hl", ("hardlink", "/etc/passwd"))], "hl"),
    ([("sub", ("dir",)), ("d", ("symlink", "sub")), ("d/evil.txt", b"x")], "d/evil.txt"),
    ([("a", ("dir",)), ("a/in", ("symlink", "..")), ("b", ("symlink", "a/in/..")), ("b/evil.txt", b"x")], "b"),
    ([("fifo", ("fifo",))], "fifo"),
    ([("sub/f", b"x"), ("d", ("symlink", "sub")), ("h", ("hardlink", "d/f"))], "h"),
    ([("sub/evil.txt", b"x"), ("sub", ("symlink", "/tmp"))], "sub"),
    # a file, then a directory (or a path through it) of the same name: was a FileExistsError traceback
    ([("a", b"x"), ("a", ("dir",)), ("a/b", b"y")], "a"),
    ([("a", b"x"), ("a/b", b"y")], "a/b"),
    ([("a", ("dir",)), ("a", b"x")], "a"),
    ([("a/b", b"x"), ("a", ("symlink", "."))], "a"),
    # hard links to later or absent members: was a KeyError traceback
    ([("h", ("hardlink", "later")), ("later", b"z")], "h"),
    ([("h", ("hardlink", "absent"))], "h"),
    ([("d", ("dir",)), ("h", ("hardlink", "d"))], "h"),
    # devices, symlink chains that leave, our own bookkeeping names, names lists cannot carry
    ([("dev", ("chr",))], "dev"),
    ([("disk", ("blk",))], "disk"),
    ([("l1", ("symlink", "l2")), ("l2", ("symlink", "..")), ("l1/evil.txt", b"x")], "l2"),
    ([("d", ("symlink", ".")), ("e", ("symlink", "d/.."))], "e"),
    ([("ok.txt", b"x"), (".evil.tar.gz.extracted", b"{}")], ".evil.tar.gz.extracted"),
    ([("sub/.x.nested.partial/evil.txt", b"x")], "sub/.x.nested.partial/evil.txt"),
    ([("line\nbreak.avi", b"x")], "line\nbreak.avi"),
    ([("//tmp/evil_abs.txt", b"x")], "//tmp/evil_abs.txt"),
])
def test_malicious_tar_is_refused(sandbox, entries, member):
    sentinel, out = sandbox
    archive = make_tar(sentinel.parent / "evil.tar.gz", entries, mode="w:gz")
    with pytest.raises(archives.UnsafeArchiveError, match=re.escape(f"evil.tar.gz: refusing member {member!r}")):
        archives.extract_archive(archive, out)
    assert_nothing_written(sentinel, out)
    assert (sentinel / "keep.txt").read_text() == "keep"


@needs_rar
def test_evil_rar_symlink_traversal_is_refused(sandbox):
    sentinel, out = sandbox
    archive = shutil.copy(RAR_FIXTURES / "rar5-evil-symlink-traversal.rar", sentinel.parent / "evil.rar")
    with pytest.raises(archives.UnsafeArchiveError, match="evil.rar: refusing member 'up'"):
        archives.extract_archive(archive, out)
    assert_nothing_written(sentinel, out)


@needs_rar
def test_rar_symlink_pointing_out_is_refused(sandbox):
    sentinel, out = sandbox
    with pytest.raises(archives.UnsafeArchiveError, match="refusing member 'random_link'.*outside"):
        archives.extract_archive(RAR_FIXTURES / "rar3-symlink-unix.rar", out)
    assert_nothing_written(sentinel, out)


def test_malicious_inner_archive_refuses_the_whole(sandbox):
    sentinel, out = sandbox
    inner = make_tar(sentinel.parent / "evil_inner.tar", [("../../evil.txt", b"x")])
    outer = make_zip(sentinel.parent / "outer.zip", [("fine.txt", b"ok"), ("evil_inner.tar", inner.read_bytes())])
    with pytest.raises(archives.UnsafeArchiveError, match="evil_inner.tar: refusing member '../../evil.txt'"):
        archives.extract_archive(outer, out, nested=True)
    assert_nothing_written(sentinel, out)


def test_cli_extract(tmp_path, capsys):
    good = make_zip(tmp_path / "good.zip", [("a.txt", b"a")])
    bad = make_zip(tmp_path / "bad.zip", [("../evil.txt", b"x")])
    assert main(["extract", str(good), str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "a.txt").read_bytes() == b"a"
    assert main(["extract", str(bad), str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "bad.zip" in err and "'../evil.txt'" in err and "Traceback" not in err
    assert main(["extract", str(tmp_path / "none.zip"), str(tmp_path / "o3")]) == 2
    (tmp_path / "junk.bin").write_bytes(b"not an archive at all" * 30)
    assert main(["extract", str(tmp_path / "junk.bin"), str(tmp_path / "o4")]) == 2
    assert not (tmp_path / "o4").exists()


@pytest.mark.parametrize("entries,member,why", [
    ([("a", b"x"), ("a", ("dir",))], "a", "a file member of the same name came before it"),
    ([("h", ("hardlink", "later")), ("later", b"z")], "h", "not a file member before it"),
    ([("dev", ("chr",))], "dev", "device files"),
])
def test_tar_edge_cases_end_in_one_line_without_traceback(tmp_path, capsys, entries, member, why):
    archive = make_tar(tmp_path / "edge.tar", entries)
    assert main(["extract", str(archive), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "edge.tar" in err and f"refusing member {member!r}" in err and why in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# expansion limits


def make_zeros_zip(path, size, name="zeros.bin"):
    """A zip of one member of size zero bytes, streamed (a 100 MB member is a 100 KB zip)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w") as member:
        block = bytes(1 << 20)
        for start in range(0, size, len(block)):
            member.write(block[: size - start])
    return path


def test_zip_bomb_is_refused_before_writing(sandbox, monkeypatch):
    sentinel, out = sandbox
    bomb = make_zeros_zip(sentinel.parent / "bomb.zip", 100 * 2**20)
    assert bomb.stat().st_size < 200_000
    written = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: (written.append(str(f)), real_open(f, *a, **k))[1])
    with pytest.raises(archives.UnsafeArchiveError, match=r"bomb.zip: refusing member 'zeros.bin' \(the member table "
                                                          r"adds up to 100.0 MB with it\).*100 times its size"):
        archives.extract_archive(bomb, out)  # the default limits
    assert not [w for w in written if "zeros.bin" in w]  # refused from the member table: nothing opened for writing
    assert_nothing_written(sentinel, out)


def test_zip_beyond_free_disk_is_refused(sandbox, monkeypatch):
    sentinel, out = sandbox
    archive = make_zeros_zip(sentinel.parent / "big.zip", 10 * 2**20)
    usage = shutil.disk_usage(sentinel)
    monkeypatch.setattr(archives.shutil, "disk_usage",
                        lambda path: usage._replace(free=archives.Limits().free_margin + 5 * 2**20))
    with pytest.raises(archives.UnsafeArchiveError, match=r"big.zip: refusing member 'zeros.bin' .* MB free on"):
        archives.extract_archive(archive, out)
    assert_nothing_written(sentinel, out)


def test_limits_are_enforced_while_writing_a_tar_stream(sandbox):
    """A tar.gz has no member table to read first: each member's header is checked before it is written."""
    sentinel, out = sandbox
    archive = sentinel.parent / "stream.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("a.bin", "b.bin", "c.bin"):
            info = tarfile.TarInfo(name)
            info.size = 4 * 2**20
            tf.addfile(info, io.BytesIO(bytes(info.size)))
    limits = archives.Limits(max_ratio=1000, max_bytes=10 * 2**20, ratio_floor=0)
    with pytest.raises(archives.UnsafeArchiveError, match=r"stream.tar.gz: refusing member 'c.bin': .*limit of"):
        archives.extract_archive(archive, out, limits=limits)
    assert_nothing_written(sentinel, out)
    archives.extract_archive(archive, out, limits=archives.Limits(max_bytes=20 * 2**20))
    assert (out / "c.bin").stat().st_size == 4 * 2**20


def test_zip_whose_table_lies_is_stopped(sandbox):
    """The central directory says 1000 bytes, the data inflates to 10 MB: never more than declared is written."""
    sentinel, out = sandbox
    archive = make_zeros_zip(sentinel.parent / "liar.zip", 10 * 2**20)
    data = bytearray(archive.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    data[central + 24: central + 28] = (1000).to_bytes(4, "little")  # uncompressed size
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"liar.zip: damaged or unsupported zip") as raised:
        archives.extract_archive(archive, out)
    assert "\n" not in str(raised.value)
    assert_nothing_written(sentinel, out)


def test_ratio_limit_is_configurable_from_the_cli(tmp_path, capsys):
    archive = make_zip(tmp_path / "text.zip", [("a.txt", b"abc" * 100_000)])
    assert main(["extract", str(archive), str(tmp_path / "o1"), "--max-ratio", "1000"]) == 0
    assert main(["extract", str(archive), str(tmp_path / "o2"), "--max-ratio", "1000", "--max-gb", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert "text.zip: refusing member 'a.txt'" in err
    assert "limit of 104.9 KB" in err and not (tmp_path / "o2").exists()


def test_nested_bomb_leaves_nothing_behind(sandbox):
    sentinel, out = sandbox
    inner = make_zeros_zip(sentinel.parent / "inner.zip", 100 * 2**20)
    outer = make_zip(sentinel.parent / "outer.zip", [("fine.txt", b"ok"), ("brush_hair.zip", inner.read_bytes())])
    with pytest.raises(archives.UnsafeArchiveError, match=r"brush_hair.zip: refusing member 'zeros.bin'"):
        archives.extract_archive(outer, out, nested=True)
    assert_nothing_written(sentinel, out)


# ---------------------------------------------------------------------------------------------------------------------
# fuzz: any bytes end in a one-line error or an extraction, never a traceback


def _mutations(data, rng, count):
    for _ in range(count):
        mutated = bytearray(data)
        how = rng.randrange(4)
        if how == 0:  # flip a few bytes
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        elif how == 1:  # truncate
            del mutated[rng.randrange(1, len(mutated)):]
        elif how == 2:  # insert junk
            at = rng.randrange(len(mutated))
            mutated[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:  # overwrite a header-sized window
            at = rng.randrange(len(mutated))
            mutated[at: at + 32] = bytes(rng.randrange(256) for _ in range(32))
        yield bytes(mutated)


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", pytest.param("rar", marks=needs_rar)])
def test_mutated_archives_never_raise_a_traceback(tmp_path, capsys, kind):
    import random

    entries = [("top/", None), ("top/a.avi", b"a" * 3000), ("top/b.txt", b"hello\n" * 50),
               ("top/l", ("symlink", "b.txt"))]
    if kind == "zip":
        base = make_zip(tmp_path / "base.zip", entries).read_bytes()
    elif kind == "rar":  # no RAR writer here: the fixture with a symlink; every mutation runs the RAR tools
        base = (RAR_FIXTURES / "rar5-symlink-unix.rar").read_bytes()
    else:
        tar_entries = [("top", ("dir",)), ("top/a.avi", b"a" * 3000), ("top/b.txt", b"hello\n" * 50),
                       ("top/l", ("symlink", "b.txt")), ("top/h", ("hardlink", "top/a.avi"))]
        base = make_tar(tmp_path / f"base.{kind}", tar_entries, mode="w:gz" if kind == "tar.gz" else "w").read_bytes()
    rng = random.Random(15)
    outcomes = {0: 0, 2: 0}
    for number, data in enumerate(_mutations(base, rng, 20 if kind == "rar" else 100)):
        archive = tmp_path / f"m{number}.{kind}"
        archive.write_bytes(data)
        out = tmp_path / f"out{number}"
        status = main(["extract", str(archive), str(out)])
        err = capsys.readouterr().err
        assert status in outcomes, (number, status, err)
        outcomes[status] += 1
        if status == 2:
            assert err.startswith("error: ") and err.count("\n") == 1 and f"m{number}.{kind}" in err, err
            assert not out.exists() or not [p for p in out.iterdir()]
        shutil.rmtree(out, ignore_errors=True)
        archive.unlink()
    assert outcomes[2] > 0


@needs_rar
def test_rar_limits_from_its_member_table(sandbox):
    sentinel, out = sandbox
    limits = archives.Limits(max_bytes=1000, ratio_floor=0)
    with pytest.raises(archives.UnsafeArchiveError, match=r"rar5-solid.rar: refusing member 'stest1.txt' .*limit of 1000 B"):
        archives.extract_archive(RAR_FIXTURES / "rar5-solid.rar", out, limits=limits)
    assert_nothing_written(sentinel, out)


def test_rar_tool_cannot_write_beyond_the_largest_declared_size(tmp_path):
    """The RAR tools write the files themselves: the kernel stops any file at the largest size the table gave."""
    import signal
    import subprocess

    target = tmp_path / "grown.bin"
    command = archives._with_file_size_limit(["dd", "if=/dev/zero", f"of={target}", "bs=1000", "count=10"], 5000)
    assert subprocess.run(command, capture_output=True).returncode == -signal.SIGXFSZ
    assert target.stat().st_size == 5000
