"""The consistency gate before any training.

Every video in every rawframes / flow list must have its frame and flow directories with exactly the listed counts
(img_00001..N, flow_x_/flow_y_00001..N−1), n_flow = n_frames − 1, and a label in range. On failure the videos are
named and the run stops; on success a report is written (the Snakemake output that lets training start).
"""
import os
from pathlib import Path

from prep import UserError, packed
from prep.atomic import atomic_file
from prep.index import read_index

MAX_NAMED = 20


def count_prefixed(folder, prefix):
    """Contiguous count N of ``prefix{:05d}.jpg`` 1..N in a video's directory or, failing that, its ``.pack``;
    ``-N - 1`` when a gap or stray file follows frame N; None when neither exists."""
    try:
        return packed.count_names(os.listdir(folder), prefix)
    except FileNotFoundError:
        return packed.count_prefixed(f"{folder}{packed.PACK_SUFFIX}", prefix)


def check_dataset(annotations_dir, frames_root, flow_root):
    """Problems found (a list of 'video: what is wrong'); empty means consistent."""
    annotations_dir = Path(annotations_dir)
    manifest, classes = read_index(annotations_dir / "manifest.parquet")
    problems = []
    lists = sorted(annotations_dir.glob("*_rawframes.txt"))
    if not lists:
        problems.append(f"{annotations_dir}: no *_rawframes.txt lists")
    seen = {}
    for rgb_list in lists:
        flow_list = rgb_list.with_name(rgb_list.name.replace("_rawframes.txt", "_flow.txt"))
        if not flow_list.is_file():
            problems.append(f"{flow_list}: missing (every rawframes list has a flow twin)")
            continue
        rgb_lines = rgb_list.read_text().splitlines()
        flow_lines = flow_list.read_text().splitlines()
        if not rgb_lines:
            problems.append(f"{rgb_list.name}: empty list")
        if [line.rsplit(" ", 2)[0] for line in rgb_lines] != [line.rsplit(" ", 2)[0] for line in flow_lines]:
            problems.append(f"{rgb_list.name} and {flow_list.name} list different videos")
        for rgb_line, flow_line in zip(rgb_lines, flow_lines):
            video_id, n_frames, label = rgb_line.rsplit(" ", 2)
            n_flow = int(flow_line.rsplit(" ", 2)[1])
            if not 0 <= int(label) < len(classes):
                problems.append(f"{video_id}: label {label} outside 0..{len(classes) - 1} ({rgb_list.name})")
            if int(n_flow) != int(n_frames) - 1:
                problems.append(f"{video_id}: {n_flow} flow frames listed for {n_frames} frames (need n_frames − 1)")
            if video_id in seen:
                continue
            seen[video_id] = True
            found = count_prefixed(Path(frames_root) / video_id, "img_")
            if found != int(n_frames):
                problems.append(f"{video_id}: {_describe(found, 'img_')} on disk, list says {n_frames}")
            for axis in ("x", "y"):
                found = count_prefixed(Path(flow_root) / video_id, f"flow_{axis}_")
                if found != n_flow:
                    problems.append(f"{video_id}: {_describe(found, f'flow_{axis}_')} on disk, list says {n_flow}")
    return problems, len(seen)


def _describe(found, prefix):
    if found is None:
        return "no directory"
    if found < 0:
        return f"{prefix} frames 1..{-found - 1} then a gap or stray file"
    return f"{found} {prefix} frames"


def run(args):
    problems, checked = check_dataset(args.annotations_dir, args.frames, args.flow)
    if problems:
        named = "\n  ".join(problems[:MAX_NAMED])
        more = f"\n  … and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        raise UserError(f"consistency check failed for {args.annotations_dir} ({len(problems)} problems):\n  "
                        f"{named}{more}")
    message = f"check: {checked} videos consistent (frames, flow = frames − 1, labels in range)"
    if args.out:
        with atomic_file(args.out) as handle:
            handle.write(message + "\n")
    print(message)
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("check", help="consistency gate: frames, flow and lists agree",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("annotations_dir", help="directory written by `prep annotations` / `prep lists`")
    parser.add_argument("--frames", required=True, help="rawframes root")
    parser.add_argument("--flow", required=True, help="flow root")
    parser.add_argument("--out", help="report file written on success")
    parser.set_defaults(func=run)
