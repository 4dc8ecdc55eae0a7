"""Evaluation: chunked scoring (bounded memory, the same scores), torchrun shards that give the one-process scores
bit for bit, predict == evaluate through one preset, clip averaging, fusion rules and the sweep, the protocol."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from train.evaluate import EvaluationError, fuse_scores, fusion_of, main as evaluate_main, metrics
from train.predict import predict_video, video_probabilities
from train.recipe import make_model, resolve

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
RUN_INFO = {"world_size": 2, "batch_per_process": 4, "total_batch": 8, "effective_lr": 0.005, "pretrained": None,
            "git_commit": "0123abc", "epoch": 3}


def write_lists(synthetic_small, directory, count=None):
    directory.mkdir(parents=True, exist_ok=True)
    rows = synthetic_small["frames"][:count]
    labels = dict(zip(synthetic_small["index"]["video_id"], synthetic_small["index"]["label"]))
    for mode, offset in (("rgb", 0), ("flow", 1)):
        (directory / f"{mode}.txt").write_text("".join(f"{r['video_id']} {r['n_frames'] - offset} "
                                                       f"{labels[r['video_id']]}\n" for r in rows))
    return directory


def write_checkpoint(run_dir, recipe, mode, classes, seed=0, epoch=3, name="final.pt"):
    settings = resolve(recipe, mode)
    torch.manual_seed(seed)
    model = make_model(settings, len(classes))
    path = run_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "settings": settings, "classes": list(classes), "epoch": epoch,
                "run_info": RUN_INFO}, path)
    return path


def score(checkpoint, lists, root, out, mode="rgb", *extra, processes=1):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                str(processes)] if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "train.evaluate", "score", "--checkpoint", str(checkpoint),
               "--list", str(lists / f"{mode}.txt"), "--root", str(root), "--out", str(out / "result.json"),
               "--scores", str(out / "scores.npz"), "--model", "m", "--dataset", "synthetic", "--workers", "0",
               *extra]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out / "scores.npz") as data:
        return json.loads((out / "result.json").read_text()), {k: data[k] for k in data.files}


TSN = {"arch": "tsn_r18", "model_options": {"base_channels": 4}, "num_clips": 2, "input_size": 32,
       "resize_short": 40, "test_views": 2, "test_crops": "three", "eval_batch": 4}


def test_two_processes_give_exactly_the_one_process_scores(synthetic_small, tmp_path):
    lists = write_lists(synthetic_small, tmp_path / "lists")
    checkpoint = write_checkpoint(tmp_path / "run", TSN, "rgb", synthetic_small["classes"])
    root = synthetic_small["root"] / "rawframes"
    one_record, one = score(checkpoint, lists, root, tmp_path / "one")
    two_record, two = score(checkpoint, lists, root, tmp_path / "two", processes=2)
    assert sorted(one) == sorted(two)
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    assert one["accurate"].shape == (8, 4) and not np.array_equal(one["accurate"], one["efficient"])
    assert two_record["protocol"]["eval_processes"] == 2 and two_record["top1"] == one_record["top1"]


def test_results_carry_the_protocol(synthetic_small, tmp_path):
    lists = write_lists(synthetic_small, tmp_path / "lists", count=2)
    checkpoint = write_checkpoint(tmp_path / "run", {**TSN, "twice_sample": True, "test_views": 1}, "flow",
                                  synthetic_small["classes"])
    record, scores = score(checkpoint, lists, synthetic_small["root"] / "flow", tmp_path / "out", "flow")
    protocol = record["protocol"]
    assert {k: protocol[k] for k in RUN_INFO if k != "git_commit"} == {k: v for k, v in RUN_INFO.items()
                                                                       if k != "git_commit"}
    assert protocol["git_commit"] == "0123abc" and protocol["checkpoint"] == {"kind": "final", "epoch": 3}
    assert protocol["test"]["accurate"] == {"sampling": "uniform", "clip_len": 1, "num_clips": 2, "views": 1,
                                            "twice_sample": True, "crops": "three", "crop_size": 32,
                                            "clips_per_video": 6}
    assert protocol["test"]["efficient"]["clips_per_video"] == 1
    assert protocol["average_clips"] == "prob" and protocol["frame_naming"] == "mmaction"
    # the flow tree's record (TV-L1 at OpenCV's defaults: no parameters changed)
    assert protocol["flow"] == {"algorithm": "tvl1", "parameters": {}, "backend": "opencv", "bound": 20.0}
    assert protocol["tree"]["stage"] == "flow" and protocol["tree"]["storage"] == "frames"
    assert json.loads(str(scores["settings"]))["twice_sample"] is True


def test_a_tree_that_contradicts_the_run_or_a_flag_is_an_error_naming_both(synthetic_small, tmp_path):
    """Evaluation takes the tree's conventions from its record: a flow tree quantized otherwise than the one the run
    was trained on, or a --naming the record contradicts, stops with one line naming both."""
    lists = write_lists(synthetic_small, tmp_path / "lists", count=2)
    checkpoint = write_checkpoint(tmp_path / "run", TSN, "flow", synthetic_small["classes"])
    state = torch.load(checkpoint, weights_only=False)
    state["run_info"] = {**RUN_INFO, "tree": {"naming": "mmaction", "algorithm": "tvl1", "backend": "opencv",
                                              "bound": 10.0}}
    torch.save(state, checkpoint)
    base = [sys.executable, "-m", "train.evaluate", "score", "--checkpoint", str(checkpoint), "--out",
            str(tmp_path / "r.json"), "--model", "m", "--dataset", "d", "--workers", "0"]
    flow = subprocess.run(base + ["--list", str(lists / "flow.txt"), "--root", str(synthetic_small["root"] / "flow")],
                          capture_output=True, text=True, cwd=REPO, env=ENV)
    assert flow.returncode == 2 and flow.stderr.count("\n") == 1, flow.stderr
    assert "bound 10.0" in flow.stderr and "bound 20.0" in flow.stderr and "Traceback" not in flow.stderr
    rgb = write_checkpoint(tmp_path / "rgb", TSN, "rgb", synthetic_small["classes"])
    naming = subprocess.run([*base[:5], str(rgb), *base[6:], "--list", str(lists / "rgb.txt"), "--root",
                             str(synthetic_small["root"] / "rawframes"), "--naming", "3dresnets"],
                            capture_output=True, text=True, cwd=REPO, env=ENV)
    assert naming.returncode == 2 and "--naming 3dresnets contradicts" in naming.stderr, naming.stderr
    assert "naming mmaction" in naming.stderr and not (tmp_path / "r.json").exists()


def test_best_checkpoint_is_scored_when_the_recipe_says_so(synthetic_small, tmp_path):
    lists = write_lists(synthetic_small, tmp_path / "lists", count=3)
    root = synthetic_small["root"] / "rawframes"
    recipe = {**TSN, "eval_checkpoint": "best"}
    final = write_checkpoint(tmp_path / "run", recipe, "rgb", synthetic_small["classes"], seed=1, epoch=5)
    result = subprocess.run([sys.executable, "-m", "train.evaluate", "score", "--checkpoint", str(final), "--list",
                             str(lists / "rgb.txt"), "--root", str(root), "--out", str(tmp_path / "r.json"),
                             "--model", "m", "--dataset", "d"], capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "best.pt" in result.stderr
    write_checkpoint(tmp_path / "run", recipe, "rgb", synthetic_small["classes"], seed=2, epoch=4,
                     name="checkpoints/best.pt")
    best_record, best = score(final, lists, root, tmp_path / "best")
    reference = write_checkpoint(tmp_path / "ref", {**TSN}, "rgb", synthetic_small["classes"], seed=2)
    _, direct = score(reference, lists, root, tmp_path / "direct")
    np.testing.assert_array_equal(best["accurate"], direct["accurate"])
    assert best_record["protocol"]["checkpoint"] == {"kind": "best", "epoch": 4}


@pytest.mark.parametrize("mode", ["rgb", "flow"])
def test_predict_gives_the_evaluation_probabilities(synthetic_small, tmp_path, mode):
    lists = write_lists(synthetic_small, tmp_path / "lists", count=3)
    recipe = {**TSN, "arch": "tsm_r18", "num_clips": 3, "test_crop_size": 36, "resize_short": 44}
    checkpoint = write_checkpoint(tmp_path / "run", recipe, mode, synthetic_small["classes"])
    root = synthetic_small["root"] / ("rawframes" if mode == "rgb" else "flow")
    _, scores = score(checkpoint, lists, root, tmp_path / "out", mode)
    video_id = str(scores["video_ids"][1])
    for accurate, key in ((True, "accurate"), (False, "efficient")):
        top = dict(predict_video(root / video_id, checkpoint, top=4, accurate=accurate))
        expected = scores[key][1]
        assert np.allclose([top[c] for c in synthetic_small["classes"]], expected, atol=1e-6), key


def test_clip_averaging_prob_score_none(synthetic_small, tmp_path):
    from train.data import normalize_on_device
    from train.export import load_checkpoint
    from train.presets import make_dataset

    lists = write_lists(synthetic_small, tmp_path / "lists", count=2)
    root = synthetic_small["root"] / "rawframes"
    scores = {}
    for average in ("prob", "score", "none"):
        checkpoint = write_checkpoint(tmp_path / average, {**TSN, "average_clips": average}, "rgb",
                                      synthetic_small["classes"])
        scores[average] = score(checkpoint, lists, root, tmp_path / average)[1]["accurate"]
    model, settings, _ = load_checkpoint(checkpoint)
    dataset = make_dataset(settings, lists / "rgb.txt", root, test_mode=True, accurate=True)
    with torch.no_grad():  # every clip's logits: 2 videos × (2 views × 3 crops)
        logits = torch.stack([model(normalize_on_device(dataset[i][0], "rgb")) for i in range(2)])
    assert logits.shape == (2, 6, 4)
    assert np.allclose(scores["score"], logits.mean(dim=1).numpy(), atol=1e-5)
    assert np.allclose(scores["prob"], logits.softmax(dim=2).mean(dim=1).numpy(), atol=1e-6)
    assert np.array_equal(scores["none"], scores["score"])  # the head-consensus reading of None: mean logits
    assert torch.allclose(video_probabilities(torch.from_numpy(scores["score"]), "score"),
                          torch.from_numpy(scores["score"]).softmax(1))


def test_mean_class_accuracy_as_mmaction2():
    # labels 0, 0, 1; predictions 0, 1, 1 and class 3 predicted for nothing: classes {0, 1} → (1/2 + 1) / 2
    scores = np.eye(4)[[0, 1, 1]]
    assert metrics(scores, [0, 0, 1], 4)["mean_class_accuracy"] == pytest.approx(0.75)
    # a class predicted but never labelled counts as 0 (confusion_matrix over labels ∪ predictions)
    assert metrics(np.eye(4)[[0, 3]], [0, 1], 4)["mean_class_accuracy"] == pytest.approx(1 / 3)


def streams(average="prob", fusion=None):
    rng = np.random.default_rng(0)
    settings = {"average_clips": average, "fusion": fusion or {"weights": {"rgb": 1.0, "flow": 1.5},
                                                               "rule": "prob"}}
    rgb = {"video_ids": np.array(["a", "b", "c"]), "labels": np.array([0, 1, 2]), "classes": np.array(["x", "y", "z"]),
           "efficient": rng.normal(size=(3, 3)), "accurate": rng.normal(size=(3, 3)), "settings": settings}
    flow = {**rgb, "efficient": rng.normal(size=(3, 3)), "accurate": rng.normal(size=(3, 3)),
            "settings": dict(settings)}
    return rgb, flow


def test_fusion_rules():
    rgb, flow = streams("score", {"weights": {"rgb": 1, "flow": 1}, "rule": "score"})
    weights, rule = fusion_of(rgb, flow)
    fused, _, _ = fuse_scores(rgb, flow, weights, rule)
    # MindSpore I3D's eval_joint: argmax of the sum of the two models' logits
    assert np.array_equal(fused["accurate"].argmax(1), (rgb["accurate"] + flow["accurate"]).argmax(1))
    soft, _, _ = fuse_scores(rgb, flow, {"rgb": 1.0, "flow": 1.5}, "prob")  # logits: softmax first
    expected = (torch.tensor(rgb["accurate"]).softmax(1) + 1.5 * torch.tensor(flow["accurate"]).softmax(1)) / 2.5
    assert np.allclose(soft["accurate"], expected.numpy())
    assert fusion_of(rgb, flow, weights=(2.0, 1.0), rule="prob") == ({"rgb": 2.0, "flow": 1.0}, "prob")
    probabilities = {**flow, "settings": {**flow["settings"], "average_clips": "prob"},
                     "accurate": torch.tensor(flow["accurate"]).softmax(1).numpy()}
    mixed, _, _ = fuse_scores(rgb, probabilities, {"rgb": 1.0, "flow": 1.5}, "prob")  # probabilities as they are
    assert np.allclose(mixed["accurate"], expected.numpy(), atol=1e-6)
    with pytest.raises(EvaluationError, match="average_clips"):
        fuse_scores(rgb, probabilities, weights, "score")
    without = {**rgb, "settings": {"average_clips": "score", "fusion": None}}
    assert fusion_of(without, {**without}, fallback_weights=(1.0, 1.5)) == ({"rgb": 1.0, "flow": 1.5}, "prob")
    flow["settings"]["fusion"] = {"weights": {"rgb": 1, "flow": 2}, "rule": "score"}
    with pytest.raises(EvaluationError, match="different fusion"):
        fusion_of(rgb, flow)


def test_fuse_cli_writes_the_sweep_beside_the_result(tmp_path):
    rgb, flow = streams()
    for name, stream in (("rgb", rgb), ("flow", flow)):
        np.savez(tmp_path / f"{name}.npz", **{k: v for k, v in stream.items() if k != "settings"},
                 settings=np.array(json.dumps(stream["settings"])))
    code = evaluate_main(["fuse", "--rgb", str(tmp_path / "rgb.npz"), "--flow", str(tmp_path / "flow.npz"),
                          "--out", str(tmp_path / "joint.json"), "--sweep", str(tmp_path / "joint.sweep.json"),
                          "--model", "m", "--dataset", "d"])
    assert code == 0
    record = json.loads((tmp_path / "joint.json").read_text())
    assert record["fusion"]["weights"] == {"rgb": 1.0, "flow": 1.5} and record["fusion"]["rule"] == "prob"
    sweep = json.loads((tmp_path / "joint.sweep.json").read_text())
    row = next(r for r in sweep["sweep"] if r["weights"]["flow"] == 1.5)
    assert row["accurate"]["top1"] == record["accurate"]["top1"]
    assert sweep["sweep"][0]["weights"]["flow"] == 0.0  # rgb alone
    assert sweep["sweep"][0]["accurate"]["top1"] == metrics(rgb["accurate"], rgb["labels"], 3)["top1"]
    best = next(r for r in sweep["sweep"] if r["weights"] == sweep["best"])
    assert best["accurate"]["top1"] == max(r["accurate"]["top1"] for r in sweep["sweep"])


MEMORY_SCRIPT = """
import json, resource, sys
import torch
from train.evaluate import score_checkpoint
checkpoint, list_path, root, eval_batch = sys.argv[1:5]
score_checkpoint(checkpoint, list_path, root, workers=0, eval_batch=1)  # the model, one clip at a time
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outputs = score_checkpoint(checkpoint, list_path, root, workers=0, eval_batch=int(eval_batch))[4]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"extra_kib": peak - baseline, "accurate": outputs["accurate"][0].tolist()}))
"""


@pytest.mark.slow
def test_accurate_i3d_r50_memory_is_bounded_by_eval_batch(synthetic_small, tmp_path):
    """An I3D-R50 (the recipe's network) with 4 views × 3 crops = 12 clips per video: scored 2 clips at a time, the
    peak memory above one-clip-at-a-time stays a fraction of scoring all 12 at once, with the same scores."""
    lists = write_lists(synthetic_small, tmp_path / "lists", count=2)
    recipe = {"arch": "i3d_r50", "num_clips": 1, "clip_len": 8, "input_size": 96, "resize_short": 96,
              "test_views": 4, "test_crops": "three", "test_crop_size": 96}
    checkpoint = write_checkpoint(tmp_path / "run", recipe, "rgb", synthetic_small["classes"])
    runs = {}
    for eval_batch in (2, 12):
        result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(checkpoint), str(lists / "rgb.txt"),
                                 str(synthetic_small["root"] / "rawframes"), str(eval_batch)], capture_output=True,
                                text=True, cwd=REPO, env=ENV, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[eval_batch] = json.loads(result.stdout.strip().splitlines()[-1])
    chunked, whole = runs[2]["extra_kib"], runs[12]["extra_kib"]
    per_clip = whole / 11  # 12 clips at once vs 1: what each further clip in a forward pass costs
    print(f"peak memory above one clip per pass: eval_batch 2 {chunked / 1024:.0f} MiB, 12 {whole / 1024:.0f} MiB")
    assert chunked <= 2 * per_clip + 32 * 1024, (chunked, whole)  # eval_batch 2: one more clip's worth, + 32 MiB
    assert chunked < whole / 3, (chunked, whole)
    assert np.allclose(runs[2]["accurate"], runs[12]["accurate"], atol=1e-5)


def test_evaluate_rule_asks_for_the_training_gpus_and_launches_torchrun(tmp_path):
    """Dry runs: evaluation goes through the training launcher with the train rule's resources (GPU pool, gres)."""
    from tests.conftest import TINY, snakemake_executable

    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    base = [snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", "-p",
            "--cores", "2", "results/tsn_synthetic_joint.json", "--configfile", str(TINY)]
    one = subprocess.run(base, capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    text = one.stdout + one.stderr
    assert "python -m train.launch --nnodes 1 --nproc-per-node 1 --threads 1 --gpus 0 -- -m train.evaluate score" \
        in text
    assert "--sweep results/tsn_synthetic_joint.sweep.json" in text
    score_line = text.split("-m train.evaluate score", 1)[1].split("\n", 1)[0]
    assert "--naming" not in score_line and "--flow" not in score_line  # the tree's record says them
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("train: {nodes: 1, nproc_per_node: 2, threads: 8, gpu: true}\n")
    gpus = subprocess.run(base + [str(cluster)], capture_output=True, text=True, env=env)
    assert gpus.returncode == 0, gpus.stderr[-3000:]
    text = gpus.stdout + gpus.stderr
    assert text.count("--gpus 2 -- -m train.evaluate score") == 2 and "gpu=2" in text
