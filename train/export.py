"""Export a trained checkpoint for deployment: TorchScript, and ONNX when the onnx package is present.

    python -m train.export work/i3d_synthetic_rgb/final.pt exported/i3d_synthetic_rgb [--format torchscript|onnx|all]

Writes OUT.pt (TorchScript; the class list and the resolved recipe ride along as extra files ``classes.txt`` and
``settings.json``) and OUT.onnx. The input is a normalised clip (B, C, T, H, W) of the recipe's test shape; the output
is the logits (B, num_classes).
"""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

from train.recipe import in_channels, make_model


def load_checkpoint(path):
    """(model in eval mode, settings, classes) from a checkpoint written by train.train."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "settings" not in state or "model" not in state:
        raise SystemExit(f"error: {path}: not an actionflow checkpoint (no model/settings)")
    model = make_model(state["settings"], len(state["classes"]))
    model.load_state_dict(state["model"])
    return model.eval(), state["settings"], state["classes"]


def example_input(settings, batch=1):
    frames = settings["num_clips"] if settings["layout"] == "segments" else settings["num_clips"] * settings["clip_len"]
    size = settings["input_size"]
    return torch.zeros(batch, in_channels(settings), frames, size, size)


def export(checkpoint, out, formats=("torchscript", "onnx")):
    """Write the requested formats; return the paths written."""
    model, settings, classes = load_checkpoint(checkpoint)
    example = example_input(settings)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    if "torchscript" in formats:
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        extra = {"classes.txt": "\n".join(classes), "settings.json": json.dumps(settings)}
        torch.jit.save(traced, str(out.with_suffix(".pt")), _extra_files=extra)
        written.append(out.with_suffix(".pt"))
    if "onnx" in formats:
        if importlib.util.find_spec("onnx") is None:
            print("onnx is not installed: skipping the ONNX export (pip install onnx)", file=sys.stderr)
        else:
            torch.onnx.export(model, (example,), str(out.with_suffix(".onnx")), input_names=["clip"],
                              output_names=["logits"], dynamic_axes={"clip": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False)
            written.append(out.with_suffix(".onnx"))
    return written


def load_torchscript(path):
    """(module, classes, settings) of an exported TorchScript file."""
    extra = {"classes.txt": "", "settings.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    return module, extra["classes.txt"].decode().split("\n"), json.loads(extra["settings.json"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="final.pt / best.pt / epoch_NNNN.pt of a run")
    parser.add_argument("out", help="output path without extension (OUT.pt, OUT.onnx)")
    parser.add_argument("--format", choices=("torchscript", "onnx", "all"), default="all")
    args = parser.parse_args(argv)
    formats = ("torchscript", "onnx") if args.format == "all" else (args.format,)
    for path in export(args.checkpoint, args.out, formats):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
