"""prep.base.download against a local faulty HTTP server and file:// URLs."""
import csv
import hashlib
import json
import os
import random
import time
import zipfile

import pytest

from prep.base import download
from prep.__main__ import main

try:
    from http_server import FaultyFileServer
except ImportError:  # tests/ became a package
    from tests.http_server import FaultyFileServer

FAST = dict(backoff=0.01, timeout=10, progress=False)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    rng = random.Random(7)
    files = {
        "big.bin": rng.randbytes(300_000),
        "small.txt": b"hello\n" * 100,
        "bad.bin": rng.randbytes(5_000),
        "plain.bin": rng.randbytes(20_000),
        "odd name & (1).tar": rng.randbytes(3_000),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    with FaultyFileServer(root) as server:
        yield server, files


def sums(server, path):
    path.write_text(server.checksums("sha256"))
    return download.read_checksums(path)


def read_missing(out_dir):
    with open(out_dir / "missing.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_dropped_connections_resume_and_complete(served, tmp_path):
    server, files = served
    server.drop_connection("big.bin", attempts=2, after=50_000)
    out = tmp_path / "out"
    done, missing = download.download_all([server.url("big.bin")], out, checksums=sums(server, tmp_path / "s"),
                                          retries=1, **FAST)
    assert missing == [] and [d.status for d in done] == ["downloaded"]
    assert (out / "big.bin").read_bytes() == files["big.bin"]
    assert not (out / "big.bin.part").exists()
    ranges = [r[1] for r in server.requests_for("big.bin")]
    assert ranges == [None, "bytes=50000-", "bytes=100000-"]
    assert read_missing(out) == []


def test_existing_part_is_resumed_with_range(served, tmp_path):
    server, files = served
    out = tmp_path / "out"
    out.mkdir()
    (out / "big.bin.part").write_bytes(files["big.bin"][:1234])
    outcome = download.download_one(server.url("big.bin"), out, checksum=None, backoff=0.01)
    assert outcome.status == "downloaded"
    assert (out / "big.bin").read_bytes() == files["big.bin"]
    assert server.requests_for("big.bin") == [("big.bin", "bytes=1234-", 206)]


def test_server_ignoring_range_restarts_cleanly(served, tmp_path):
    server, files = served
    server.ignore_range.add("plain.bin")
    out = tmp_path / "out"
    out.mkdir()
    (out / "plain.bin.part").write_bytes(b"x" * 999)  # would corrupt the file if appended to
    outcome = download.download_one(server.url("plain.bin"), out, backoff=0.01)
    assert outcome.status == "downloaded"
    assert (out / "plain.bin").read_bytes() == files["plain.bin"]


def test_404_and_bad_checksum_end_in_missing_csv(served, tmp_path):
    server, files = served
    server.not_found.add("small.txt")
    server.corrupt.add("bad.bin")
    out = tmp_path / "out"
    urls = [server.url("small.txt"), server.url("bad.bin"), server.url("odd name & (1).tar")]
    done, missing = download.download_all(urls, out, checksums=sums(server, tmp_path / "s"), retries=2, **FAST)
    assert [d.name for d in done] == ["odd name & (1).tar"]
    assert (out / "odd name & (1).tar").read_bytes() == files["odd name & (1).tar"]
    rows = read_missing(out)
    assert [r["url"] for r in rows] == urls[:2]
    assert "404" in rows[0]["reason"]
    assert "sha256 mismatch" in rows[1]["reason"]
    for name in ("small.txt", "bad.bin"):
        assert not (out / name).exists() and not (out / f"{name}.part").exists()
    assert len(server.requests_for("small.txt")) == 1  # a 404 is not retried


def test_retries_exhausted_without_progress(served, tmp_path):
    server, _ = served
    server.drop_connection("plain.bin", attempts=50, after=0)
    out = tmp_path / "out"
    outcome = download.download_one(server.url("plain.bin"), out, retries=2, backoff=0.01)
    assert outcome.status == "missing" and "gave up after 3 attempts" in outcome.reason
    assert not (out / "plain.bin").exists()


def test_file_url_with_md5(tmp_path):
    source = tmp_path / "src" / "a b&c.zip"
    source.parent.mkdir()
    with zipfile.ZipFile(source, "w") as zf:  # named .zip, so it must start as one
        zf.writestr("z.txt", b"zipzip" * 1000)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    (tmp_path / "md5sums").write_text(f"{md5} *src/a b&c.zip\n")
    url = source.as_uri()
    assert "%20" in url and download.file_name_for(url) == "a b&c.zip"
    done, missing = download.download_all([url, "file:///no/such/file.bin"], tmp_path / "out",
                                          checksums=download.read_checksums(tmp_path / "md5sums"), **FAST)
    assert [d.status for d in done] == ["downloaded"]
    assert (tmp_path / "out" / "a b&c.zip").read_bytes() == source.read_bytes()
    assert missing[0][0] == "file:///no/such/file.bin" and "not found" in missing[0][1]


def test_cache_is_filled_and_used(served, tmp_path):
    server, files = served
    cache = tmp_path / "cache"
    checksums = sums(server, tmp_path / "s")
    first, _ = download.download_all([server.url("plain.bin")], tmp_path / "a", checksums=checksums,
                                     cache_dir=cache, **FAST)
    assert first[0].status == "downloaded" and (cache / "plain.bin").read_bytes() == files["plain.bin"]
    server.requests.clear()
    second, _ = download.download_all([server.url("plain.bin")], tmp_path / "b", checksums=checksums,
                                      cache_dir=cache, **FAST)
    assert second[0].status == "cached" and server.requests == []
    assert (tmp_path / "b" / "plain.bin").read_bytes() == files["plain.bin"]
    # a cached file whose checksum does not match is not used
    (cache / "small.txt").write_bytes(b"stale")
    third, _ = download.download_all([server.url("small.txt")], tmp_path / "c", checksums=checksums,
                                     cache_dir=cache, **FAST)
    assert third[0].status == "downloaded" and (tmp_path / "c" / "small.txt").read_bytes() == files["small.txt"]


def test_rerun_skips_present_and_replaces_corrupt(served, tmp_path):
    server, files = served
    checksums = sums(server, tmp_path / "s")
    out = tmp_path / "out"
    urls = [server.url("small.txt"), server.url("plain.bin")]
    download.download_all(urls, out, checksums=checksums, **FAST)
    server.requests.clear()
    (out / "plain.bin").write_bytes(b"damaged")
    done, missing = download.download_all(urls, out, checksums=checksums, **FAST)
    assert {d.name: d.status for d in done} == {"small.txt": "present", "plain.bin": "downloaded"}
    assert [r[0] for r in server.requests] == ["plain.bin"]
    assert (out / "plain.bin").read_bytes() == files["plain.bin"]


def test_read_checksums_formats(tmp_path):
    path = tmp_path / "sums"
    path.write_text("# comment\n" + "a" * 64 + "  dir/x.rar\r\n" + "B" * 32 + " *y.zip\n"
                    "SHA1 (z.tar) = " + "c" * 40 + "\n")
    assert download.read_checksums(path) == {"x.rar": ("sha256", "a" * 64), "y.zip": ("md5", "b" * 32),
                                             "z.tar": ("sha1", "c" * 40)}
    path.write_text("abc  x.rar\n")
    with pytest.raises(download.UserError, match="line 1"):
        download.read_checksums(path)


def test_cli_exit_codes(served, tmp_path, capsys):
    server, files = served
    server.not_found.add("small.txt")
    good = tmp_path / "good.list"
    good.write_text(f"# K400 parts\n\n{server.url('plain.bin')}\n{server.url('small.txt')}\n")
    bad = tmp_path / "bad.list"
    bad.write_text(f"{server.url('small.txt')}\n")
    (tmp_path / "s").write_text(server.checksums())
    common = ["--workers", "2", "--retries", "0", "--backoff", "0.01", "--checksums", str(tmp_path / "s")]
    assert main(["download", str(good), str(tmp_path / "o1"), *common]) == 0
    assert (tmp_path / "o1" / "plain.bin").is_file() and len(read_missing(tmp_path / "o1")) == 1
    assert main(["download", str(bad), str(tmp_path / "o2"), *common]) == 1
    assert len(read_missing(tmp_path / "o2")) == 1
    assert main(["download", str(tmp_path / "nope.list"), str(tmp_path / "o3")]) == 2
    assert "nope.list" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o3")


def test_verified_checksum_is_remembered(served, tmp_path, monkeypatch):
    server, files = served
    checksums = sums(server, tmp_path / "s")
    out = tmp_path / "out"
    download.download_all([server.url("plain.bin")], out, checksums=checksums, **FAST)
    assert (out / ".plain.bin.verified").is_file()

    def no_hashing(*args):
        raise AssertionError("hashed again")

    monkeypatch.setattr(download, "file_digest", no_hashing)
    done, _ = download.download_all([server.url("plain.bin")], out, checksums=checksums, **FAST)
    assert done[0].status == "present"


def test_complete_part_is_finished_without_refetching(served, tmp_path):
    server, files = served
    out = tmp_path / "out"
    out.mkdir()
    (out / "small.txt.part").write_bytes(files["small.txt"])
    outcome = download.download_one(server.url("small.txt"), out, checksum=None, backoff=0.01)
    assert outcome.status == "downloaded" and (out / "small.txt").read_bytes() == files["small.txt"]
    assert [r[2] for r in server.requests_for("small.txt")] == [416]


# ---------------------------------------------------------------------------------------------------------------------
# a download knows when it is complete (issue 15)


def test_body_ended_early_with_length_is_not_complete(served, tmp_path):
    server, files = served
    server.drop_connection("big.bin", attempts=1, after=50_000)
    out = tmp_path / "out"
    outcome = download.download_one(server.url("big.bin"), out, backoff=0.01)
    assert outcome.status == "downloaded" and (out / "big.bin").read_bytes() == files["big.bin"]
    assert server.requests_for("big.bin") == [("big.bin", None, 200), ("big.bin", "bytes=50000-", 206)]


def test_body_ended_early_without_length_is_not_complete(served, tmp_path):
    """No Content-Length: the end of the connection is no proof; a Range probe at the end finds the rest."""
    server, files = served
    server.no_length.add("big.bin")
    server.drop_connection("big.bin", attempts=1, after=50_000)
    out = tmp_path / "out"
    outcome = download.download_one(server.url("big.bin"), out, backoff=0.01)
    assert outcome.status == "downloaded" and (out / "big.bin").read_bytes() == files["big.bin"]
    # the probe at the end of the short body finds the rest and continues; the Content-Range gives the total
    assert server.requests_for("big.bin") == [("big.bin", None, 200), ("big.bin", "bytes=50000-", 206)]
    server.drop_connection("big.bin", attempts=0)
    (out / "big.bin").unlink()
    download.download_one(server.url("big.bin"), out, backoff=0.01)
    assert (out / "big.bin").read_bytes() == files["big.bin"]  # a whole body without length, confirmed by a 416:
    assert server.requests_for("big.bin")[-2:] == [("big.bin", None, 200), ("big.bin", "bytes=300000-", 416)]


def test_body_without_length_and_without_range_support_is_checked_by_a_second_answer(served, tmp_path):
    server, files = served
    server.no_length.add("plain.bin")
    server.ignore_range.add("plain.bin")
    server.drop_connection("plain.bin", attempts=1, after=5_000)
    out = tmp_path / "out"
    outcome = download.download_one(server.url("plain.bin"), out, backoff=0.01)
    assert outcome.status == "downloaded" and (out / "plain.bin").read_bytes() == files["plain.bin"]


def test_206_to_a_request_without_range_is_not_the_whole_file(served, tmp_path):
    server, files = served
    server.partial_to_plain.add("big.bin")
    out = tmp_path / "out"
    outcome = download.download_one(server.url("big.bin"), out, backoff=0.01)
    assert outcome.status == "downloaded" and (out / "big.bin").read_bytes() == files["big.bin"]
    assert server.requests_for("big.bin") == [("big.bin", None, 206), ("big.bin", "bytes=150000-", 206)]


@pytest.mark.parametrize("with_length", [True, False])
def test_wrong_content_range_is_never_appended(served, tmp_path, with_length):
    """A resume answered with the whole file under the label of the range asked for: the .part is restarted,
    never grown beyond the file (which a later Range request past the end would show)."""
    server, files = served
    server.drop_connection("big.bin", attempts=1, after=50_000)
    server.wrong_range.add("big.bin")
    if not with_length:
        server.no_length.add("big.bin")
    out = tmp_path / "out"
    outcome = download.download_one(server.url("big.bin"), out, backoff=0.01)
    assert outcome.status == "downloaded" and (out / "big.bin").read_bytes() == files["big.bin"]
    starts = [int(r[1][len("bytes="):-1]) for r in server.requests_for("big.bin") if r[1]]
    assert max(starts) <= len(files["big.bin"])


def test_html_page_served_as_an_archive_is_rejected(served, tmp_path, capsys):
    server, _ = served
    page = b"<!DOCTYPE html>\n<html><head><title>Moved</title></head><body>Please log in</body></html>\n"
    (server.root / "UCF101.rar").write_bytes(page)
    out = tmp_path / "out"
    outcome = download.download_one(server.url("UCF101.rar"), out, backoff=0.01)
    assert outcome.status == "missing" and outcome.reason == "expected a RAR archive, got an HTML page"
    assert not (out / "UCF101.rar").exists() and not (out / "UCF101.rar.part").exists()
    # an old run's page under the final name is not taken for the archive either
    (out / "UCF101.rar").write_bytes(page)
    assert download.download_one(server.url("UCF101.rar"), out, backoff=0.01).status == "missing"
    assert not (out / "UCF101.rar").exists()
    # through `prep fetch`: one line saying what came instead
    sources = json.dumps({"urls": [server.url("UCF101.rar")]})
    assert main(["fetch", "ucf101", str(tmp_path / "s.json"), "--sources", sources, "--downloads", str(out),
                 "--backoff", "0.01"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "UCF101.rar: expected a RAR archive, got an HTML page" in err and not (tmp_path / "s.json").exists()


def test_url_names_that_collide_with_bookkeeping_are_refused(served, tmp_path):
    server, files = served
    for name in ("x", "x.part", "missing.csv", ".x.verified"):
        (server.root / name).write_bytes(f"content of {name}\n".encode())
    out = tmp_path / "out"
    urls = [server.url(name) for name in ("x", "x.part", "missing.csv", ".x.verified")]
    done, missing = download.download_all(urls, out, workers=4, **FAST)
    assert [d.name for d in done] == ["x"] and (out / "x").read_bytes() == b"content of x\n"
    reasons = dict(missing)
    assert "ends in .part" in reasons[urls[1]]
    assert "reserved for our own report" in reasons[urls[2]]
    assert "bookkeeping" in reasons[urls[3]]
    assert [r["url"] for r in read_missing(out)] == urls[1:]  # missing.csv is our report, not the served file
    for name in ("x.part", ".x.verified"):
        assert not (out / name).exists()
    assert not server.requests_for("x.part") and not server.requests_for("missing.csv")


def test_fetch_reserves_its_folders(served, tmp_path):
    server, _ = served
    (server.root / "lists").write_bytes(b"not a folder")
    done, missing = download.download_all([server.url("lists")], tmp_path / "out", reserved=("lists",), **FAST)
    assert not done and "reserved" in missing[0][1]


def test_deadline_per_file_besides_the_read_timeout(served, tmp_path):
    """A server that trickles bytes never trips the per-read timeout; the deadline ends it and keeps the .part."""
    server, files = served
    server.trickle["big.bin"] = 0.05
    out = tmp_path / "out"
    started = time.monotonic()
    done, missing = download.download_all([server.url("big.bin")], out, deadline=1.0, **FAST)
    assert time.monotonic() - started < 5
    assert not done and "not complete within the deadline of 1 s per file" in missing[0][1]
    assert 0 < (out / "big.bin.part").stat().st_size < len(files["big.bin"]) and not (out / "big.bin").exists()


def test_local_copy_that_is_not_the_archive_it_is_named_is_rejected(tmp_path, capsys):
    page = tmp_path / "UCF101.rar"
    page.write_bytes(b"<html><body>404 Not Found</body></html>\n")
    sources = json.dumps({"local": [str(page)]})
    assert main(["fetch", "ucf101", str(tmp_path / "s.json"), "--sources", sources, "--downloads",
                 str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "UCF101.rar: expected a RAR archive, got an HTML page" in err


@pytest.mark.parametrize("name", ["train.csv", "train_link.list"])
def test_html_page_served_as_a_list_is_rejected(served, tmp_path, name):
    server, _ = served
    (server.root / name).write_bytes(b"\n\n<html><head><title>Sign in</title></head></html>")
    outcome = download.download_one(server.url(name), tmp_path / "out", backoff=0.01)
    assert outcome.status == "missing" and outcome.reason == "expected text, got an HTML page"
