"""Data preparation for actionflow: datasets, downloads, archives, frames, flow, annotations, checks.

Layers, imports one way: ``prep.base`` (atomic writes, disk space, packs, the frame source, names, sources, media,
downloads, archives, errors) ← ``prep.datasets`` (facts and parsers per dataset) ← the stages (one module and one
CLI verb each) ← ``prep.__main__``.
"""
from prep.base.errors import UserError  # noqa: F401  (``from prep import UserError`` for scripts and tests)
