"""Train and test data presets built from a resolved recipe — the one place that says how a recipe's clips are
sampled and transformed, shared by training, evaluation, prediction and export (as torchvision's
references/video_classification/presets.py).

Two test modes: *efficient* — ``num_clips`` segments (or one clip), one view (``dense`` sampling: its
``test_views`` start positions, as mmaction2's DenseSampleFrames val pipelines, e.g. v0.24.1
configs/recognition/i3d/i3d_r50_dense_32x2x1_100e_kinetics400_rgb.py l.29-38: num_sample_positions defaults to
10), one centre crop of ``input_size``;
*accurate* — the recipe's ``test_num_clips`` (default ``num_clips``) × ``test_views`` (doubled by
``twice_sample``) × ``test_crops`` crops of ``test_crop_size`` (default ``input_size``).
"""
from prep.base.trees import tree_conventions
from train.data import ClipSampler, ClipWriter, EvalTransform, FrameDataset, FrameSource, TrainTransform


def channels_per_frame(settings):
    return 3 if settings["mode"] == "rgb" else 2


def eval_protocol(settings, accurate):
    """What a test mode samples and crops: {sampling, num_clips, clip_len, views, twice_sample, crops, crop_size,
    clips_per_video} (``test_sampling`` / ``test_clip_len`` apply to both test modes)."""
    sampling = {"sampling": settings["test_sampling"] or settings["sampling"],
                "clip_len": settings["test_clip_len"] or settings["clip_len"]}
    if not accurate:  # dense: mmaction2's val_pipeline is DenseSampleFrames(test_mode=True) too, all its start positions
        views = settings["test_views"] if sampling["sampling"] == "dense" else 1
        protocol = {"num_clips": settings["num_clips"], "views": views, "twice_sample": False, "crops": "center",
                    "crop_size": settings["input_size"]}
    else:
        protocol = {"num_clips": settings["test_num_clips"] or settings["num_clips"], "views": settings["test_views"],
                    "twice_sample": bool(settings["twice_sample"]), "crops": settings["test_crops"],
                    "crop_size": settings["test_crop_size"] or settings["input_size"]}
    protocol = {**sampling, **protocol}
    views = protocol["views"] * (2 if protocol["twice_sample"] and protocol["sampling"] == "uniform" else 1)
    protocol["clips_per_video"] = views * {"center": 1, "three": 3, "ten": 10}[protocol["crops"]]
    return protocol


def clip_bytes(settings, test_mode, accurate=False):
    """Bytes of one dataset item (uint8): a training clip, or a test video's views × crops of the test mode."""
    if test_mode:
        protocol = eval_protocol(settings, accurate)
        size, frames = protocol["crop_size"], protocol["num_clips"] * protocol["clip_len"]
        count = protocol["clips_per_video"]
    else:
        size, frames, count = settings["input_size"], settings["num_clips"] * settings["clip_len"], 1
    return count * frames * channels_per_frame(settings) * size * size


def train_sampler(settings):
    return ClipSampler(settings["num_clips"], settings["clip_len"], settings["frame_interval"],
                       kind=settings["sampling"])


def train_transform(settings):
    writer = ClipWriter(channels_per_frame(settings), settings["input_size"], settings["layout"],
                        is_flow=settings["mode"] == "flow")
    return TrainTransform(writer, settings["resize_short"], settings["scales"], settings["max_wh_scale_gap"],
                          settings["num_fixed_crops"], settings["flip"], settings.get("randaugment"),
                          crop=settings["train_crop"])


def eval_sampler(settings, accurate=False):
    protocol = eval_protocol(settings, accurate)
    return ClipSampler(protocol["num_clips"], protocol["clip_len"], settings["frame_interval"], test_mode=True,
                       views=protocol["views"], twice_sample=protocol["twice_sample"], kind=protocol["sampling"])


def eval_transform(settings, accurate=False):
    protocol = eval_protocol(settings, accurate)
    writer = ClipWriter(channels_per_frame(settings), protocol["crop_size"], settings["layout"],
                        is_flow=settings["mode"] == "flow")
    return EvalTransform(writer, settings["resize_short"], protocol["crops"])


def frame_source(settings, root, naming=None, video_decoder="cpu"):
    """Where a run's lists point: the rgb or flow frames (the run's mode) under ``root``, read with the names the
    tree's record says (``naming``: for a tree without one; default mmaction); video files decoded on
    ``video_decoder`` (cpu, or cuda:N from prep.base.frame_source.choose_video_decoder)."""
    naming = tree_conventions(root, settings["mode"], naming=naming)["naming"]
    return FrameSource(str(root), settings["mode"], naming, video_decoder=video_decoder)


def make_dataset(settings, items, root, test_mode, accurate=False, naming=None, video_decoder="cpu"):
    """The dataset of a list (path or [(video_id, total_frames, label)]) under a rawframes / flow root."""
    source = frame_source(settings, root, naming, video_decoder)
    if test_mode:
        return FrameDataset(items, source, eval_sampler(settings, accurate), eval_transform(settings, accurate),
                            seed=settings["seed"])
    return FrameDataset(items, source, train_sampler(settings), train_transform(settings), seed=settings["seed"])
