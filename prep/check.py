"""The consistency gate before any training.

Every video in every rawframes / flow list must have its frame and flow folders (or packs) with exactly the listed
counts, numbered 1..N without gaps or strays under the naming the manifest records (:mod:`prep.base.frame_source`;
the trees' records, ``.tree.meta``, must say the same),
the flow count its naming's rule gives (mmaction: n_frames − 1), and a label in range. On failure the videos are
named and the run stops; on success a report is written (the Snakemake output that lets training start).
"""
from pathlib import Path

from prep.base import arguments
from prep.base.atomic import atomic_file
from prep.base.errors import UserError
from prep.base.frame_source import FrameError, naming_name, open_frames, recorded_namings
from prep.base.index_file import read_index
from prep.base.trees import TREE_RECORD, agree, recorded_section

MAX_NAMED = 20


def frames_on_disk(root, video_id, modality, naming):
    """``(N, problem)``: frames 1..N of a video's folder or pack are there, ``problem`` says what is wrong after
    them (a gap, a stray file) or that there are no frames at all (N None)."""
    try:
        with open_frames(root, video_id, modality, naming) as frames:
            return frames.contiguous()
    except FrameError:
        return None, "no directory or pack"


def check_dataset(annotations_dir, frames_root, flow_root):
    """Problems found (a list of 'video: what is wrong'); empty means consistent."""
    annotations_dir = Path(annotations_dir)
    manifest, classes = read_index(annotations_dir / "manifest.parquet")
    naming, flow_naming = recorded_namings(manifest.attrs)
    for modality, root, names in (("rgb", frames_root, naming), ("flow", flow_root, flow_naming)):
        agree(modality, {"naming": naming_name(names)}, recorded_section(root, modality) or {},
              f"{annotations_dir / 'manifest.parquet'}", f"{Path(root) / TREE_RECORD}", keys=("naming",))
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
            if len(rgb_line.split()) != 3:  # mmaction2's and PaddleVideo's readers split on whitespace
                problems.append(f"{video_id!r}: whitespace in a listed path ({rgb_list.name})")
            n_flow = int(flow_line.rsplit(" ", 2)[1])
            if not 0 <= int(label) < len(classes):
                problems.append(f"{video_id}: label {label} outside 0..{len(classes) - 1} ({rgb_list.name})")
            if n_flow != flow_naming.flow_count(int(n_frames)):
                problems.append(f"{video_id}: {n_flow} flow frames listed for {n_frames} frames "
                                f"(need {flow_naming.flow_count(int(n_frames))})")
            if video_id in seen:
                continue
            seen[video_id] = True
            for modality, root, listed, names in (("rgb", frames_root, int(n_frames), naming),
                                                  ("flow", flow_root, n_flow, flow_naming)):
                found, problem = frames_on_disk(root, video_id, modality, names)
                if problem or found != listed:
                    what = problem or f"{found} {modality} frames"
                    problems.append(f"{video_id}: {what} on disk, list says {listed} {modality} frames")
    return problems, len(seen)


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
    parser.add_argument("annotations_dir", type=arguments.input_dir,
                        help="directory written by `prep annotations` / `prep lists`")
    parser.add_argument("--frames", required=True, type=arguments.input_dir, help="rawframes root")
    parser.add_argument("--flow", required=True, type=arguments.input_dir, help="flow root")
    parser.add_argument("--out", type=arguments.output_file, help="report file written on success")
    parser.set_defaults(func=run)
