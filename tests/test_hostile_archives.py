"""Issue 23, archives: every compressed member is read, merges never delete, nested archives never overwrite the
outer one, header records are bounded before they are read, a refused archive in a tolerant dataset costs only
itself — and property tests over names and byte damage for zip, tar, tar.gz and RAR.

The bombs run under an address-space limit and a timeout: in a process of their own (``prep`` as a user runs it),
and the property tests in this process with a soft RLIMIT_AS raised back after each test."""
import gzip
import io
import os
import resource
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prep.__main__ import main
from prep.base import archives, names
from prep.base.errors import UserError
from tests.test_hostile_limits import one_line_error

REPO = Path(__file__).resolve().parents[1]
RAR_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "rar"
if not RAR_FIXTURES.is_dir():
    RAR_FIXTURES = Path("/work/shared/fixtures/rar")
pytestmark = pytest.mark.timeout(180)


def have_rar():
    try:
        import rarfile  # noqa: F401
    except ImportError:
        return False
    return RAR_FIXTURES.is_dir() and bool(archives.rar_tools())


needs_rar = pytest.mark.skipif(not have_rar(), reason="RAR fixtures, rarfile or a RAR tool (unar / bsdtar) missing")


@pytest.fixture(autouse=True)
def _bounded(memory_limit):
    """Every test here under the address-space limit of conftest's ``memory_limit``."""


def prep(*args, timeout=120):
    """`python -m prep …` in its own process, under an address-space limit of 1.5 GiB."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))

    return subprocess.run([sys.executable, "-m", "prep", *map(str, args)], capture_output=True, text=True,
                          errors="replace", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout,
                          preexec_fn=limit)


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    """An uncompressed tar: entries (name, bytes) files, (name, None) folders, (name, ('symlink', target))."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            if data is None:
                zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
            elif isinstance(data, tuple):
                info = zipfile.ZipInfo(name)
                info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, data[1])
            else:
                zf.writestr(name, data)
    return path


def tree(root):
    return sorted(p.relative_to(root).as_posix() for p in Path(root).rglob("*"))


# ---------------------------------------------------------------------------------------------------------------------
# every member of every compressed stream


def test_a_tar_gz_of_two_gzip_members_extracts_both(tmp_path):
    """tarfile's stream reader stopped at the end of the first gzip member: half the files, exit 0."""
    data = tar_bytes([("top", None), ("top/a.txt", b"a" * 5000), ("top/b.txt", b"b" * 5000)])
    cut = 512 * 3 + 512  # inside a.txt's data: the second member holds the rest of it and all of b.txt
    archive = tmp_path / "split.tar.gz"
    archive.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    archives.extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out/top/a.txt").read_bytes() == b"a" * 5000
    assert (tmp_path / "out/top/b.txt").read_bytes() == b"b" * 5000


@pytest.mark.parametrize("compress", [gzip.compress, __import__("bz2").compress, __import__("lzma").compress])
def test_concatenated_compressed_tars_extract_every_member(tmp_path, compress):
    """`cat a.tar.gz b.tar.gz > c.tar.gz`: every member of every stream, under one set of checks."""
    first = compress(tar_bytes([("a.txt", b"first")]))
    second = compress(tar_bytes([("b/c.txt", b"second")]))
    archive = tmp_path / "cat.tar"
    archive.write_bytes(first + second)
    archives.extract_archive(archive, tmp_path / "out")
    assert tree(tmp_path / "out") == [".cat.tar.extracted", "a.txt", "b", "b/c.txt"]


def test_a_second_tar_cannot_undo_the_checks_of_the_first(tmp_path):
    first = tar_bytes([("link", ("symlink", "."))])
    second = tar_bytes([("link/x.txt", b"through the link")])
    archive = tmp_path / "cat.tar"
    archive.write_bytes(first + second)
    result = prep("extract", archive, tmp_path / "out")
    one_line_error(result, "refusing member 'link/x.txt'", "symlink")
    assert not (tmp_path / "out").exists()


def test_data_after_the_end_of_a_tar_is_refused_not_ignored(tmp_path):
    archive = tmp_path / "junk.tar.gz"
    archive.write_bytes(gzip.compress(tar_bytes([("a.txt", b"a")]) + b"\x01" * 700))
    one_line_error(prep("extract", archive, tmp_path / "out"), "junk.tar.gz", "damaged")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------------------
# merging into a folder that holds another archive's content


@pytest.mark.parametrize("order", ["file-then-folder", "folder-then-file"])
def test_merging_never_deletes_what_another_archive_brought(tmp_path, order):
    """A file x over another archive's x/y.txt deleted x/ (rmtree), exit 0; the other order was a traceback and a
    .partial left behind."""
    with_folder = make_zip(tmp_path / "folder.zip", [("x/y.txt", b"keep me")])
    with_file = make_zip(tmp_path / "file.zip", [("x", b"a file"), ("other.txt", b"o")])
    first, second = (with_file, with_folder) if order == "file-then-folder" else (with_folder, with_file)
    out = tmp_path / "out"
    archives.extract_archive(first, out)
    before = {p: (out / p).read_bytes() for p in tree(out) if (out / p).is_file()}
    result = prep("extract", second, out)
    one_line_error(result, f"{second.name}: cannot merge into", "'x' is a", "nothing was extracted")
    assert {p: (out / p).read_bytes() for p in tree(out) if (out / p).is_file()} == before
    assert not [p for p in os.listdir(out) if p.endswith(".partial")]


def test_an_archive_never_replaces_a_file_another_one_brought(tmp_path):
    out = tmp_path / "out"
    archives.extract_archive(make_zip(tmp_path / "a.zip", [("README.txt", b"from a"), ("a/x", b"x")]), out)
    result = prep("extract", make_zip(tmp_path / "b.zip", [("README.txt", b"from b"), ("b/y", b"y")]), out)
    one_line_error(result, "b.zip: cannot merge into", "'README.txt' is a file already there")
    assert (out / "README.txt").read_bytes() == b"from a" and not (out / "b").exists()


def test_a_merge_cut_short_is_finished_by_a_rerun(tmp_path, monkeypatch):
    out, archive = tmp_path / "out", make_zip(tmp_path / "a.zip", [("d/1.txt", b"1"), ("d/2.txt", b"2")])
    moves = []

    def cut(source, dest):
        moves.append(source)
        raise KeyboardInterrupt  # killed between the marker saying "merging" and the end of the moves

    with monkeypatch.context() as patch:
        patch.setattr(archives, "_merge_move", cut)
        with pytest.raises(KeyboardInterrupt):
            archives.extract_archive(archive, out)
    (out / "d").mkdir()
    (out / "d" / "1.txt").write_bytes(b"1")  # the part of the merge that happened
    archives.extract_archive(archive, out)
    assert tree(out) == [".a.zip.extracted", "d", "d/1.txt", "d/2.txt"] and moves


def test_merging_disjoint_archives_and_rerunning_one_still_work(tmp_path):
    out = tmp_path / "out"
    archives.extract_archive(make_zip(tmp_path / "a.zip", [("shared/a.txt", b"a")]), out)
    archives.extract_archive(make_zip(tmp_path / "b.zip", [("shared/b.txt", b"b")]), out)
    archives.extract_archive(tmp_path / "a.zip", out, force=True)  # its own files are replaced by themselves
    assert tree(out) == [".a.zip.extracted", ".b.zip.extracted", "shared", "shared/a.txt", "shared/b.txt"]


def test_merging_through_a_symlink_of_another_archive_is_refused(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "elsewhere").mkdir()
    out.mkdir()
    os.symlink(tmp_path / "elsewhere", out / "x")
    one_line_error(prep("extract", make_zip(tmp_path / "a.zip", [("x/y.txt", b"y")]), out), "'x' is a folder")
    assert os.listdir(tmp_path / "elsewhere") == []


# ---------------------------------------------------------------------------------------------------------------------
# nested archives never overwrite the outer one


def test_an_inner_archive_never_overwrites_the_outer_archives_files(tmp_path):
    inner = make_zip(tmp_path / "brush_hair.zip", [("v1.avi", b"from the inner archive")])
    outer = make_zip(tmp_path / "outer.zip", [("brush_hair/v1.avi", b"from the outer archive"),
                                             ("brush_hair.zip", inner.read_bytes())])
    result = prep("extract", "--nested", outer, tmp_path / "out")
    one_line_error(result, "outer.zip: inner archive brush_hair.zip", "'v1.avi' is a file already there")
    assert not (tmp_path / "out").exists()


def test_an_inner_archive_may_add_to_a_folder_of_the_outer_one(tmp_path):
    inner = make_zip(tmp_path / "brush_hair.zip", [("brush_hair/v2.avi", b"inner")])
    outer = make_zip(tmp_path / "outer.zip", [("brush_hair/v1.avi", b"outer"), ("brush_hair.zip", inner.read_bytes())])
    archives.extract_archive(outer, tmp_path / "out", nested=True)
    assert tree(tmp_path / "out") == [".outer.zip.extracted", "brush_hair", "brush_hair/v1.avi", "brush_hair/v2.avi"]


def test_an_inner_archive_whose_folder_is_a_file_of_the_outer_one_is_refused(tmp_path):
    inner = make_zip(tmp_path / "brush_hair.zip", [("v.avi", b"inner")])
    outer = make_zip(tmp_path / "outer.zip", [("brush_hair", b"a file"), ("brush_hair.zip", inner.read_bytes())])
    one_line_error(prep("extract", "--nested", outer, tmp_path / "out"), "a file 'brush_hair' of the outer archive")


# ---------------------------------------------------------------------------------------------------------------------
# header records bounded before they are read


def header_bomb(path, kind, size):
    """A .tar.gz whose first record is a GNU long-name or PAX header of ``size`` bytes (zeros compress 1000:1)."""
    info = tarfile.TarInfo("././@LongLink" if kind == "gnu" else "././@PaxHeader")
    info.type = {"gnu": tarfile.GNUTYPE_LONGNAME, "gnulink": tarfile.GNUTYPE_LONGLINK, "pax": tarfile.XHDTYPE,
                 "global": tarfile.XGLTYPE}[kind]
    info.size = size
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(info.tobuf(format=tarfile.USTAR_FORMAT if kind in ("pax", "global") else tarfile.GNU_FORMAT))
        record = b"%d path=" % size if kind in ("pax", "global") else b""
        handle.write(record)
        chunk = b"a" * (1 << 20)
        left = size - len(record)
        while left > 0:
            handle.write(chunk[:left])
            left -= len(chunk)
        handle.write(b"\0" * (-size % 512))
        handle.write(tar_bytes([("after.txt", b"x")]))
    return path


@pytest.mark.parametrize("kind", ["gnu", "gnulink", "pax", "global"])
def test_a_huge_header_is_refused_before_it_is_read(tmp_path, kind):
    """A 255 KB .tar.gz with a 256 MiB long name took 1-2 GB and printed a 512 MB "one-line" error."""
    archive = header_bomb(tmp_path / "bomb.tar.gz", kind, 256 << 20)
    assert archive.stat().st_size < 2 << 20
    result = prep("extract", archive, tmp_path / "out", timeout=60)
    one_line_error(result, "bomb.tar.gz: refusing a ", "header of 256.0 MB (at most 1.0 MB)")
    assert not (tmp_path / "out").exists()


def test_headers_count_against_the_expansion_limit(tmp_path):
    """Many headers under the per-header limit still add up: they are taken from the archive's allowance."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for number in range(40):
            info = tarfile.TarInfo(f"f{number}")
            info.pax_headers = {"comment": "c" * (600 << 10)}
            tf.addfile(info, io.BytesIO(b""))
    archive = tmp_path / "many.tar.gz"
    archive.write_bytes(gzip.compress(buffer.getvalue()))
    with pytest.raises(archives.UnsafeArchiveError, match=r"refusing a PAX header .* would expand to more than"):
        archives.extract_archive(archive, tmp_path / "out", limits=archives.Limits(max_bytes=8 << 20))
    archives.extract_archive(archive, tmp_path / "out")  # within the default limits: extracted
    assert len(tree(tmp_path / "out")) == 41


def test_many_empty_members_and_long_zero_padding_count_against_the_limit(tmp_path):
    limits = archives.Limits(max_bytes=1 << 20, ratio_floor=0)
    many = tmp_path / "many.tar.gz"
    many.write_bytes(gzip.compress(tar_bytes([(f"f{number}", b"") for number in range(3000)])))
    with pytest.raises(archives.UnsafeArchiveError, match=r"refusing the header of member 'f20\d\d'"):
        archives.extract_archive(many, tmp_path / "out", limits=limits)
    padded = tmp_path / "padded.tar.gz"
    padded.write_bytes(gzip.compress(tar_bytes([("a.txt", b"a")]) + b"\0" * (4 << 20)))
    with pytest.raises(archives.UnsafeArchiveError, match=r"refusing padding"):
        archives.extract_archive(padded, tmp_path / "out", limits=limits)
    archives.extract_archive(padded, tmp_path / "out")  # within the default limits
    assert tree(tmp_path / "out") == [".padded.tar.gz.extracted", "a.txt"]


def test_a_sparse_member_is_refused(tmp_path):
    info = tarfile.TarInfo("sparse.bin")
    info.type = tarfile.GNUTYPE_SPARSE
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    archive = tmp_path / "sparse.tar"
    archive.write_bytes(bytes(block) + b"\0" * 1024)
    one_line_error(prep("extract", archive, tmp_path / "out"), "sparse.bin")


def test_a_huge_member_name_gives_a_short_message(tmp_path):
    archive = make_zip(tmp_path / "long.zip", [("../" + "n" * 60000, b"x")])  # zip's limit is 65535 bytes
    with pytest.raises(archives.UnsafeArchiveError) as caught:
        archives.extract_archive(archive, tmp_path / "out")
    assert len(str(caught.value)) < 600 and "…[+59843 chars]" in str(caught.value)


# ---------------------------------------------------------------------------------------------------------------------
# a tolerant dataset: a refused archive costs only itself


def test_a_refused_archive_in_a_tolerant_dataset_costs_only_itself(tmp_path):
    good = make_zip(tmp_path / "good.zip", [("good/v.mp4", b"video")])
    evil = make_zip(tmp_path / "evil.zip", [("../evil.txt", b"x")])
    dots = make_zip(tmp_path / "...zip", [("v.mp4", b"video")])
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(b"\x1f\x8b" + b"\0" * 50)
    failed = archives.unpack([good, dots, evil, damaged], tmp_path / "out", tolerate_failures=True)
    assert [Path(archive).name for archive, _ in failed] == ["...zip", "evil.zip", "damaged.tar.gz"]
    assert all("\n" not in reason for _, reason in failed)
    assert (tmp_path / "out/good/good/v.mp4").read_bytes() == b"video"
    assert sorted(os.listdir(tmp_path / "out")) == ["good"]
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(archives.UnsafeArchiveError):  # not tolerant: the first refusal is the error
        archives.unpack([good, evil], tmp_path / "out2")


# ---------------------------------------------------------------------------------------------------------------------
# property tests: hostile names and damaged bytes over zip, tar, tar.gz and RAR

# names an attacker tries: dots, leading dots, long names (250+ bytes), look-alikes of separators and dots,
# Windows forms, and our own bookkeeping shapes
HOSTILE = ([".", "..", "...", "....", ".hidden", "..x", ".x.", "a" * 250, "é" * 130, "b" * 300, "a\u2215b",
            "a\uff0fb", "\u2024\u2024", "\u2025", "a\\b", "C:", "x:y", "con", "nul.txt", "a ", " a", "e\u0301",
            "\u00e9", ".a.partial", ".a.zip.extracted", "x.part", "a\u200bb", "\ufeff"]
           + ["ok", "v.avi", "sub"])
component = st.sampled_from(HOSTILE)
member_name = st.lists(component, min_size=1, max_size=3).map("/".join) | st.sampled_from(
    ["/abs.txt", "../up.txt", "a/../../up.txt", "./a.txt", "a//b", "a/./b"])
entries = st.lists(st.tuples(member_name, st.sampled_from(["file", "dir", "symlink"]), component),
                   min_size=1, max_size=5)
PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def build(kind, path, items):
    """An archive of ``kind`` holding items (name, 'file'|'dir'|'symlink', link target); None if that format
    cannot even store them (a name too long for zip's 16-bit fields never happens here)."""
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, what, target in items:
                if what == "dir":
                    zf.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
                elif what == "symlink":
                    info = zipfile.ZipInfo(name)
                    info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
                    zf.writestr(info, target)
                else:
                    zf.writestr(name, name.encode("utf-8", "surrogateescape")[:64])
        return path
    data = tar_bytes([(name, None if what == "dir" else ("symlink", target) if what == "symlink"
                       else name.encode()[:64]) for name, what, target in items], fmt=tarfile.PAX_FORMAT)
    path.write_bytes(gzip.compress(data) if kind == "tar.gz" else data)
    return path


def check_outcome(tmp_path, archive, out, status, err):
    """The property: exit 0 with everything inside out, or one short error line and out as it was; never anything
    outside out, never a bookkeeping leftover, never a name over NAME_MAX."""
    assert status in (0, 2), (status, err[-2000:])
    assert sorted(os.listdir(tmp_path)) == sorted(["keep.txt", archive.name] + (["out"] if out.exists() else [])), \
        os.listdir(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "keep"
    if status == 2:
        assert err.startswith("error: ") and err.count("\n") == 1 and len(err) < 1500, err[-3000:]
        assert not out.exists() or os.listdir(out) == []
        return
    real_out = os.path.realpath(out)
    for folder, dirs, files in os.walk(out):
        for name in dirs + files:
            path = os.path.join(folder, name)
            assert names.name_bytes(name) <= names.NAME_MAX
            assert name == names.bookkeeping(archive.name, "extracted") or not name.endswith(
                (".partial", ".scratch", ".lifted", ".tmp")), path
            if os.path.islink(path):
                assert os.path.realpath(path).startswith(real_out + os.sep) or os.path.realpath(path) == real_out


def extract_once(tmp_path, archive, capsys):
    out = tmp_path / "out"
    status = main(["extract", str(archive), str(out)])
    return out, status, capsys.readouterr().err


def fresh(tmp_path):
    for entry in tmp_path.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (tmp_path / "keep.txt").write_text("keep")


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_property_hostile_names_end_in_an_extraction_or_one_line(tmp_path, capsys, kind):
    @PROPERTY
    @given(items=entries)
    def run(items):
        fresh(tmp_path)
        archive = build(kind, tmp_path / f"a.{kind}", items)
        out, status, err = extract_once(tmp_path, archive, capsys)
        check_outcome(tmp_path, archive, out, status, err)
        if status == 0:  # what was extracted is what the archive names, under the same names
            files = {n.strip("/") for n, what, _ in items if what == "file"}
            for name in files:
                parts = [p for p in name.split("/") if p not in ("", ".")]
                if (out / "/".join(parts)).is_file() and not (out / "/".join(parts)).is_symlink():
                    assert (out / "/".join(parts)).read_bytes() == name.encode()[:64]

    run()


def _damage(data, draw):
    how = draw(st.sampled_from(["truncate", "flip", "extra gzip member", "junk gzip member", "insert"]))
    if how == "truncate":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if how == "flip":
        mutated = bytearray(data)
        for at in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            mutated[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(mutated)
    if how == "extra gzip member":
        return data + gzip.compress(tar_bytes([(draw(member_name), b"extra")]))
    if how == "junk gzip member":
        return data + gzip.compress(draw(st.binary(min_size=1, max_size=2000)))
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]


BASES = {"zip": lambda p: make_zip(p, [("top/", None), ("top/a.avi", b"a" * 3000), ("top/l", ("symlink", "a.avi"))]),
         "tar": lambda p: p.write_bytes(tar_bytes([("top", None), ("top/a.avi", b"a" * 3000),
                                                    ("top/l", ("symlink", "a.avi"))])) and p,
         "tar.gz": lambda p: p.write_bytes(gzip.compress(tar_bytes([("top", None), ("top/a.avi", b"a" * 3000),
                                                                     ("top/l", ("symlink", "a.avi"))]))) and p}


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", pytest.param("rar", marks=needs_rar)])
def test_property_damaged_bytes_end_in_an_extraction_or_one_line(tmp_path, capsys, kind):
    if kind == "rar":
        base = (RAR_FIXTURES / "rar5-symlink-unix.rar").read_bytes()
    else:
        BASES[kind](tmp_path / f"base.{kind}")
        base = (tmp_path / f"base.{kind}").read_bytes()

    @settings(PROPERTY, max_examples=25 if kind == "rar" else 80)
    @given(data=st.data())
    def run(data):
        fresh(tmp_path)
        archive = tmp_path / f"m.{kind}"
        archive.write_bytes(_damage(base, data.draw))
        out, status, err = extract_once(tmp_path, archive, capsys)
        check_outcome(tmp_path, archive, out, status, err)
        if status == 2:
            assert f"m.{kind}" in err

    run()


@needs_rar
@pytest.mark.parametrize("fixture", sorted(p.name for p in RAR_FIXTURES.glob("*.rar")) if RAR_FIXTURES.is_dir()
                         else [])
def test_property_rar_fixtures_into_a_folder_of_hostile_names(tmp_path, capsys, fixture):
    """Every RAR fixture, renamed after a hostile name, beside another archive's content of the same names."""
    @settings(PROPERTY, max_examples=6)
    @given(name=component)
    def run(name):
        fresh(tmp_path)
        archive = tmp_path / names.fit(f"{name}.rar")
        shutil.copyfile(RAR_FIXTURES / fixture, archive)
        out, status, err = extract_once(tmp_path, archive, capsys)
        check_outcome(tmp_path, archive, out, status, err)

    run()


def test_one_line_errors_never_dump_a_member_name(tmp_path):
    """UserError messages are cut where they are printed, whatever built them."""
    class Long(UserError):
        pass

    from prep import __main__ as entry

    def boom(_args):
        raise Long("x" * 100000 + "\nsecond line")

    parser = entry.build_parser()
    args = parser.parse_args(["extract", str(make_zip(tmp_path / "a.zip", [("a", b"a")])), str(tmp_path / "out")])
    args.func = boom
    err = io.StringIO()
    sys_stderr, sys.stderr = sys.stderr, err
    try:
        assert entry.run_parsed(args) == 2
    finally:
        sys.stderr = sys_stderr
    assert err.getvalue().count("\n") == 1 and len(err.getvalue()) < 1500
