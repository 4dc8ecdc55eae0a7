"""Load a recipe's pretrained weights into a model: digest checked, converted (convert.py), loaded strictly.

The recipe key and the files (digest rules, cache, fetching) are train/weights.py's; this module needs torch.
:func:`apply_pretrained` is what training calls: after building the model, before DDP wrapping, and never when
resuming (a resumed run's checkpoint holds the weights, and its record of them).
"""
import pickle

import torch

from train.weights import PretrainedError, cached_file, is_remote, pretrained_spec, verify_git_blob, verify_sha256

from .convert import HEAD_KEYS, SOURCES, ConversionError, load_pretrained

__all__ = ["PretrainedError", "apply_pretrained", "read_checkpoint"]


def read_checkpoint(path, full_digest):
    """The checkpoint's contents: ``torch.load(weights_only=True)``; a pickle that needs more is unpickled only when
    the recipe pins the file's full sha256."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not full_digest:
            first = str(error).strip().splitlines()[0]
            raise PretrainedError(f"{path}: holds more than tensors ({first}); give the full sha256 in the recipe "
                                  "to allow unpickling it") from None
    except Exception as error:  # torch raises RuntimeError / EOFError / ... for files that are not checkpoints
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise PretrainedError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    return torch.load(path, map_location="cpu", weights_only=False)


def apply_pretrained(model, settings, path=None):
    """Load the run's pretrained weights from the local file `path` into `model` (strict, see convert.py).

    Returns the record for checkpoints and results, ``{url, sha256, source, head}`` — sha256 the full digest of the
    file loaded, head "loaded" or "reinitialised" (a classifier for another number of classes, or ImageNet's) — or
    None for ``pretrained: null``. Raises PretrainedError with a one-line message.
    """
    spec = pretrained_spec(settings)
    if spec is None:
        if path is not None:
            raise PretrainedError(f"{path}: given as pretrained weights, but the recipe says pretrained: null")
        return None
    if spec["source"] not in SOURCES:
        raise PretrainedError(f"pretrained source of {spec['url']}: {spec['source']!r} is not one of "
                              f"{', '.join(SOURCES)}")
    if path is None:
        if is_remote(spec["url"]):
            raise PretrainedError(f"{spec['url']}: not fetched; run the Snakemake rule pretrained_weights or "
                                  "python -m train.weights fetch, and pass --pretrained PATH")
        path = cached_file(spec, None)
    digest = verify_sha256(path, spec["sha256"])
    verify_git_blob(path, spec.get("git_blob"))
    state = read_checkpoint(path, full_digest=spec["sha256"] is not None and len(spec["sha256"]) == 64)
    if not isinstance(state, dict):
        raise PretrainedError(f"{path}: holds a {type(state).__name__}, not a state dict")
    try:
        initialised = load_pretrained(model, state, spec["source"], settings["arch"])
    except (ConversionError, ValueError) as error:
        raise PretrainedError(f"{path}: {error}") from None
    head = "reinitialised" if any(k in HEAD_KEYS for k in initialised) else "loaded"
    return {**spec, "sha256": digest, "head": head}
