"""Export a trained checkpoint for deployment: a torch.export program, and ONNX when onnx + onnxscript are present.

    python -m train.export work/i3d_synthetic_rgb/final.pt exported/i3d_synthetic_rgb [--format pt2|onnx|all]

Writes OUT.pt2 (``torch.export.save`` of the model's ExportedProgram; the class list and the resolved recipe ride
inside as extra files ``classes.txt`` and ``settings.json``), OUT.onnx (``torch.onnx.export(..., dynamo=True)``, the
exporter built on torch.export), and OUT.json beside them: ``{"classes": [...], "settings": {...}, "input": {"shape":
[B, C, T, H, W], "dtype": "float32", "batch": "dynamic", "normalize": ...}, "output": "logits (B, num_classes)"}``.
The input is a clip already normalised as the recipe says (train.data.normalize_on_device); the batch size is free.
Load the program again with :func:`load_exported` (``torch.export.load``; ``program.module()`` is a callable
nn.Module). TorchScript (torch.jit.trace / save), deprecated in current torch, is no longer written.
"""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

from prep.base.atomic import atomic_file
from train.recipe import in_channels, make_model

FORMATS = ("pt2", "onnx")


def load_checkpoint(path):
    """(model in eval mode, settings, classes) from a checkpoint written by train.train."""
    return model_from_state(torch.load(path, map_location="cpu", weights_only=False), path)


def model_from_state(state, path):
    """(model in eval mode, settings, classes) of a loaded checkpoint ``state`` (read from ``path``)."""
    if "settings" not in state or "model" not in state:
        raise SystemExit(f"error: {path}: not an actionflow checkpoint (no model/settings)")
    model = make_model(state["settings"], len(state["classes"]))
    model.load_state_dict(state["model"])
    return model.eval(), state["settings"], state["classes"]


def example_input(settings, batch=1):
    frames = settings["num_clips"] if settings["layout"] == "segments" else settings["num_clips"] * settings["clip_len"]
    size = settings["input_size"]
    return torch.zeros(batch, in_channels(settings), frames, size, size)


def export_program(model, settings):
    """The model's ExportedProgram with a free batch dimension (traced at batch 2: torch.export specialises a
    dimension it sees as 1)."""
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        return torch.export.export(model, (example_input(settings, batch=2),), dynamic_shapes=({0: batch},))


def description(settings, classes):
    shape = list(example_input(settings).shape)
    return {"classes": classes, "settings": settings,
            "input": {"shape": ["B", *shape[1:]], "dtype": "float32", "batch": "dynamic",
                      "normalize": settings["normalize"], "mode": settings["mode"], "layout": settings["layout"]},
            "output": "logits (B, num_classes)"}


def export(checkpoint, out, formats=FORMATS):
    """Write the requested formats and OUT.json; return the paths written."""
    model, settings, classes = load_checkpoint(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program = export_program(model, settings)
    written = []
    if "pt2" in formats:
        extra = {"classes.txt": "\n".join(classes), "settings.json": json.dumps(settings)}
        with atomic_file(out.with_suffix(".pt2"), "wb") as handle:
            torch.export.save(program, handle, extra_files=extra)
        written.append(out.with_suffix(".pt2"))
    if "onnx" in formats:
        missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
        if missing:
            print(f"{' and '.join(missing)} not installed: skipping the ONNX export (pip install onnx onnxscript)",
                  file=sys.stderr)
        else:
            onnx_program = torch.onnx.export(program, f=None, input_names=["clip"], output_names=["logits"],
                                             dynamo=True, external_data=False, verbose=False)
            with atomic_file(out.with_suffix(".onnx"), "wb") as handle:
                handle.write(onnx_program.model_proto.SerializeToString())
            written.append(out.with_suffix(".onnx"))
    with atomic_file(out.with_suffix(".json")) as handle:
        handle.write(json.dumps(description(settings, classes), indent=2) + "\n")
    written.append(out.with_suffix(".json"))
    return written


def load_exported(path):
    """(callable module, classes, settings) of an exported .pt2 file."""
    extra = {"classes.txt": "", "settings.json": ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), extra["classes.txt"].split("\n"), json.loads(extra["settings.json"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="final.pt / best.pt / epoch_NNNN.pt of a run")
    parser.add_argument("out", help="output path without extension (OUT.pt2, OUT.onnx, OUT.json)")
    parser.add_argument("--format", choices=(*FORMATS, "all"), default="all")
    args = parser.parse_args(argv)
    for path in export(args.checkpoint, args.out, FORMATS if args.format == "all" else (args.format,)):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
