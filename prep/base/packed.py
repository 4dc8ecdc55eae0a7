"""One file per video: the frames (or flow) of a video as JPEG blobs in a small indexed container.

``prep frames --pack`` writes ``OUT/[class/]video.pack`` instead of the directory ``OUT/[class/]video/``, and
``prep flow --pack`` writes ``OUT/[class/]video.pack`` with the flow; in place (OUT == SRC over packed frames) the flow
is merged into the frames' pack. The JPEG bytes are exactly those the directory layout would hold (never
recompressed), stored under the same names (``img_00001.jpg``, ``flow_x_00001.jpg``, ``n_frames``, ``.flow_done``),
so a Kinetics-400 tree drops from ~10^8 files to ~10^5.

Format (all integers little-endian)::

    offset 0        magic            8 bytes  b"AFPACK\\x00\\x01"
    8               blobs            the entries' bytes, back to back, in the order they were added
    index_offset    names            utf-8 names joined by b"\\n" (names never contain a newline)
                    table            count × (offset u64, size u32)   — struct "<QI", one per name, same order
    end − 24        trailer          index_offset u64, names_length u32, count u32, magic b"AFPKEND\\x00"

The index sits at the end so a pack is written in one streaming pass; it is written to a hidden temporary file and
renamed into place, so a pack that exists is complete (a truncated one fails its trailer check). Reading frame k is
one ``pread`` after the index is loaded (opening reads the last 64 KiB once: trailer and index): faster than a zip (Python-level
central-directory parsing plus a local header per member) and than tar (no index at all).

    from prep.base.packed import open_packed
    with open_packed("rawframes/abseiling/_4YTwq0-73Y_000044_000054.pack") as pack:
        jpeg = pack.read("img_00001.jpg")              # bytes, as the file img_00001.jpg would hold
        pack.names()                                   # ['img_00001.jpg', …, 'n_frames']
"""
import os
import struct

PACK_SUFFIX = ".pack"
MAGIC = b"AFPACK\x00\x01"
END_MAGIC = b"AFPKEND\x00"
TRAILER = struct.Struct("<QII8s")
ENTRY = struct.Struct("<QI")
TAIL_READ = 1 << 16


class PackError(ValueError):
    """Not a pack, or a damaged one."""


class PackWriter:
    """Streams entries into an open binary file; ``finish()`` appends the index. Use through ``prep.atomic``."""

    def __init__(self, handle):
        self.handle = handle
        self.names, self.table, self.seen = [], [], set()
        handle.write(MAGIC)
        self.offset = len(MAGIC)

    def add(self, name, data):
        if "\n" in name or name in self.seen:
            raise ValueError(f"pack entry name {name!r}: duplicate or contains a newline")
        size = self.handle.write(data)  # bytes or any contiguous buffer (a numpy array from cv2.imencode)
        self.names.append(name)
        self.seen.add(name)
        self.table.append((self.offset, size))
        self.offset += size

    def finish(self):
        names = "\n".join(self.names).encode()
        self.handle.write(names)
        self.handle.write(b"".join(ENTRY.pack(*row) for row in self.table))
        self.handle.write(TRAILER.pack(self.offset, len(names), len(self.names), END_MAGIC))


class PackedFile:
    """Random access to the entries of one pack: ``read(name) -> bytes``, ``names()``, ``in``, ``len``."""

    _fd = None

    def __init__(self, path):
        self.path = str(path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._load_index()
        except BaseException:
            self.close()
            raise

    def _load_index(self):
        size = os.fstat(self._fd).st_size
        if size < len(MAGIC) + TRAILER.size:
            raise PackError(f"{self.path}: not a frame pack")
        tail_start = max(0, size - TAIL_READ)  # one read: trailer and, for any usual video, the whole index
        tail = os.pread(self._fd, size - tail_start, tail_start)
        index_offset, names_length, count, end = TRAILER.unpack_from(tail, len(tail) - TRAILER.size)
        index_length = names_length + count * ENTRY.size
        if end != END_MAGIC or index_offset + index_length + TRAILER.size != size or index_offset < len(MAGIC):
            raise PackError(f"{self.path}: not a frame pack, or a damaged one (bad trailer)")
        if index_offset >= tail_start:
            index = tail[index_offset - tail_start:len(tail) - TRAILER.size]
        else:
            index = os.pread(self._fd, index_length, index_offset)
        self._names = index[:names_length].decode().split("\n") if count else []
        self._table = index[names_length:]
        if len(self._names) != count or len(self._table) != count * ENTRY.size:
            raise PackError(f"{self.path}: damaged frame pack (index)")
        self._position = {name: k for k, name in enumerate(self._names)}

    def names(self):
        return list(self._names)

    def read(self, name):
        try:
            offset, size = ENTRY.unpack_from(self._table, self._position[name] * ENTRY.size)
        except KeyError:
            raise KeyError(f"{self.path}: no entry {name!r}") from None
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise PackError(f"{self.path}: entry {name!r} is cut short")
        return data

    def __contains__(self, name):
        return name in self._position

    def __len__(self):
        return len(self._names)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def open_packed(path):
    """Open a pack for reading (see the module docstring); raises PackError if it is not a complete pack."""
    return PackedFile(path)
