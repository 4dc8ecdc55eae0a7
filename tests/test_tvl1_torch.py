"""The torch TV-L1 (prep.base.tvl1_torch) against OpenCV contrib's, on real camera footage and in the flow stage.

Targets (issue 18): mean end-point error ≤ 0.001 px, 99th percentile ≤ 0.01 px, ≥ 99.99 % of quantized values equal
to OpenCV's and none off by more than one level. Following OpenCV 5.1's arithmetic the twin is in fact bit-exact on
these pairs; the targets are what a change must keep.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from prep.base.errors import UserError
from prep.base.optical_flow import create_batch_estimator, create_estimator, quantize, resolve_device
from prep.base.tvl1_parameters import TVL1_PARAMETERS, flow_parameters, parse_parameters
from prep.base.tvl1_torch import (REFERENCE_OPENCV, TVL1Parameters, median_blur5, pyramid_sizes, remap_cubic,
                                  resize_linear, tvl1_batch)

FIXTURE = Path(__file__).parent / "fixtures" / "tvl1" / "tvl1.npz"


def fidelity(flow, reference, bound=20.0):
    """(mean EPE, 99th percentile EPE, fraction of quantized values equal, largest quantized difference)."""
    epe = np.linalg.norm(flow.astype(np.float64) - reference, axis=-1)
    ours = quantize(flow, bound).astype(int)
    theirs = quantize(reference, bound).astype(int)
    return epe.mean(), np.percentile(epe, 99), (ours == theirs).mean(), np.abs(ours - theirs).max()


def assert_fidelity(flow, reference, what):
    mean, p99, equal, worst = fidelity(flow, reference)
    assert mean <= 1e-3 and p99 <= 1e-2 and equal >= 0.9999 and worst <= 1, \
        f"{what}: mean EPE {mean:.2e}, p99 {p99:.2e}, quantized equal {equal:.6f}, worst {worst} levels"


@pytest.fixture(scope="module")
def footage():
    data = np.load(FIXTURE)
    groups = sorted(int(key.split("_")[1]) for key in data.files if key.startswith("frames_"))
    return [(str(data[f"name_{n}"]), data[f"frames_{n}"], data[f"flow_{n}"]) for n in groups], \
        str(data["opencv_version"])


def test_the_pinned_opencv_is_installed(footage):
    _, made_with = footage
    assert cv2.__version__ == REFERENCE_OPENCV == made_with, (
        f"OpenCV {cv2.__version__} is installed; the torch TV-L1 follows the arithmetic of OpenCV {REFERENCE_OPENCV} "
        f"(pyproject pins it) and the shipped reference flows were made with {made_with}: re-check the fidelity "
        "(tests/fixtures/tvl1/make_fixture.py) before changing the pin")


def test_the_shipped_flows_are_the_installed_opencvs(footage):
    """The reference flows (made by make_fixture.py) are what the installed OpenCV computes: one pair per frame size
    recomputed (the rest would only cost time)."""
    groups, _ = footage
    opencv = create_estimator("tvl1", "opencv")
    for name, frames, shipped in groups:
        if frames.shape[1] * frames.shape[2] <= 256 * 340:
            assert np.array_equal(opencv(frames[0], frames[1]), shipped[0]), name


def test_torch_tvl1_gives_opencvs_flow_on_real_footage(footage):
    """Every pair of every clip, in one batch per clip (so pairs converge at their own pace)."""
    groups, _ = footage
    for name, frames, reference in groups:
        flows = tvl1_batch(torch.from_numpy(frames[:-1]), torch.from_numpy(frames[1:])).numpy()
        for k, (flow, expected) in enumerate(zip(flows, reference)):
            assert_fidelity(flow, expected, f"{name} pair {k}")
        assert np.array_equal(flows, reference), f"{name}: within the targets but no longer bit-exact"


def test_a_pair_in_a_batch_gets_what_it_gets_alone(footage):
    """Pairs that converge at different paces (a still pair meets the stopping rule at once) keep their own result,
    with the host looking every iteration (CPU default) or every few (GPU default: masked in between)."""
    groups, _ = footage
    _, frames, shipped = next(g for g in groups if g[1].shape[1:] == (144, 176))
    still = np.stack([frames[0], frames[0]])
    previous = torch.from_numpy(np.stack([frames[0], still[0]]))
    following = torch.from_numpy(np.stack([frames[1], still[1]]))
    for check_every in (1, 7):
        flows = tvl1_batch(previous, following, check_every=check_every).numpy()
        assert np.array_equal(flows[0], shipped[0])
        alone = tvl1_batch(previous[1:], following[1:]).numpy()[0]
        assert np.array_equal(flows[1], alone) and not flows[1].any()


@pytest.mark.parametrize("size", [(256, 340), (72, 170), (144, 176), (113, 150), (480, 640)])
def test_pyramid_resizes_are_opencvs(size):
    """Down by 0.8 (IPP's affine warp or plain resize, by whether the rounded size is exact) and back up to a given
    size, on flow-like values; the pyramid stops where tvl1flow.cpp does."""
    rng = np.random.default_rng(sum(size))
    image = rng.normal(0, 3, size).astype(np.float32)
    sizes = pyramid_sizes(*size)
    for smaller in sizes[1:]:
        down = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        assert down.shape == smaller
        assert np.array_equal(resize_linear(torch.from_numpy(image)[None], smaller, 0.8)[0].numpy(), down)
        up = cv2.resize(down, image.shape[::-1], interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(resize_linear(torch.from_numpy(down)[None], image.shape)[0].numpy(), up)
        image = down
    assert pyramid_sizes(40, 200) == [(40, 200), (32, 160), (26, 128), (21, 102), (17, 82)]
    assert pyramid_sizes(24, 200) == [(24, 200), (19, 160)]


def test_cubic_remap_and_median_are_opencvs():
    rng = np.random.default_rng(0)
    for spread in (0.5, 3.0, 40.0):  # within, across and far beyond the borders (constant 0)
        height, width = rng.integers(20, 90, size=2)
        image = (rng.random((height, width)) * 255).astype(np.float32)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        map_x = (xs + rng.normal(0, spread, xs.shape)).astype(np.float32)
        map_y = (ys + rng.normal(0, spread, ys.shape)).astype(np.float32)
        expected = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC)
        ours = remap_cubic(torch.from_numpy(image)[None, None], torch.from_numpy(map_x)[None],
                           torch.from_numpy(map_y)[None])[0, 0].numpy()
        assert np.array_equal(ours, expected), f"spread {spread}: {(ours != expected).sum()} pixels differ"
        field = rng.normal(0, spread, (height, width)).astype(np.float32)
        assert np.array_equal(median_blur5(torch.from_numpy(field)[None])[0].numpy(), cv2.medianBlur(field, 5))


def test_the_opencv_estimator_forgets_a_small_frame():
    """calc() lowers its scale count for a frame too small for five scales and keeps it; the estimator resets it, so
    a video's flow does not depend on the videos the same process saw before."""
    rng = np.random.default_rng(1)
    tiny = [(rng.random((20, 20)) * 255).astype(np.uint8) for _ in range(2)]
    frames = [cv2.GaussianBlur((rng.random((64, 80)) * 255).astype(np.uint8), (0, 0), 2) for _ in range(2)]
    fresh = create_estimator("tvl1", "opencv")(*frames)
    reused = create_estimator("tvl1", "opencv")
    reused(*tiny)
    assert np.array_equal(reused(*frames), fresh)


def test_batch_estimators_agree_and_take_many_pairs(footage):
    groups, _ = footage
    _, frames, shipped = next(g for g in groups if g[1].shape[1:] == (144, 176))
    for backend in ("opencv", "torch"):
        estimate = create_batch_estimator("tvl1", backend, "cpu", batch_size=1)
        assert np.array_equal(estimate(frames[:1], frames[1:2]), shipped[:1])
    single = create_estimator("tvl1", "torch", "cpu")
    assert np.array_equal(single(frames[0], frames[1]), shipped[0])
    with pytest.raises(UserError, match="tvl1 only"):
        create_batch_estimator("farneback", "torch", "cpu")


def test_a_gpu_batch_is_sized_from_its_free_memory(monkeypatch):
    """The GPU branch of batch_size_for (no GPU here: its free memory faked): half the free memory over the bytes a
    pair needs, within 1..limit."""
    from prep.base.optical_flow import batch_size_for
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (8 << 30, 80 << 30))
    assert batch_size_for(256, 340, "cuda") == min(64, (4 << 30) // (256 * 340 * 1600))
    assert batch_size_for(4096, 4096, "cuda:0") == 1 and batch_size_for(8, 8, "cuda", limit=5) == 5


def test_a_gpu_asked_for_and_missing_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(UserError, match="sees no GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="unknown flow device"):
        resolve_device("tpu")


def test_parameters_are_opencvs_defaults():
    """Every name of TVL1_PARAMETERS is an OpenCV setter with a getter, whose value is the recorded default and the
    torch twin's field."""
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    params = TVL1Parameters()
    for name, (setter, field, kind, default) in TVL1_PARAMETERS.items():
        opencv = getattr(tvl1, "g" + setter[1:])()
        assert opencv == pytest.approx(default, rel=1e-7) and getattr(params, field) == default, name
        assert isinstance(default, kind), name
    assert tvl1.getGamma() == 0 and not tvl1.getUseInitialFlow()


@pytest.mark.parametrize("parameters", [{"epsilon": 0.05}, {"warps": 2, "scales": 3, "tau": 0.2, "lambda": 0.3,
                                                            "theta": 0.4, "outer_iterations": 4, "scale_step": 0.6,
                                                            "inner_iterations": 7, "median_filtering": 1}])
def test_changed_parameters_are_opencvs_too(footage, parameters):
    """Parameters other than the defaults reach OpenCV and the twin alike: bit-exact with each other, and not the
    default flow."""
    groups, _ = footage
    _, frames, shipped = next(g for g in groups if g[1].shape[1:] == (144, 176))
    opencv = create_estimator("tvl1", "opencv", parameters=parameters)(frames[0], frames[1])
    twin = create_batch_estimator("tvl1", "torch", "cpu", parameters=parameters)(frames[:1], frames[1:2])[0]
    assert np.array_equal(twin, opencv) and not np.array_equal(opencv, shipped[0])


def test_parameters_are_checked_by_name_and_kept_only_where_they_differ():
    assert flow_parameters("tvl1", {"warps": 5.0, "epsilon": 0.05, "scales": 3.0}) == {"epsilon": 0.05, "scales": 3}
    assert parse_parameters("scales=3, epsilon=0.01") == {"scales": 3} and flow_parameters("dis", {}) == {}
    for text, message in [("eps=0.1", "unknown TV-L1 parameter 'eps'"), ("warps=2.5", "warps must be a whole"),
                          ("epsilon=fast", "epsilon must be a number"), ("scale_step=1", "scale_step 1.0 out of"),
                          ("median_filtering=3", "median_filtering 3"), ("tau=-1", "tau -1.0 out of range"),
                          ("warps=inf", "warps must be a whole number, not inf"), ("epsilon=nan", "not nan")]:
        with pytest.raises(UserError, match=message):
            parse_parameters(text)
    with pytest.raises(UserError, match="config flow.tvl1: parameters apply to tvl1 only, not 'dis'"):
        flow_parameters("dis", {"epsilon": 0.05}, where="config flow.tvl1")


def test_flow_stage_with_the_torch_backend_writes_opencvs_tree(synthetic_small, tmp_path, monkeypatch):
    """The same JPEG bytes as the opencv tree (conftest's synthetic_small), over chunk boundaries (3 pairs per
    request, two video threads sharing one batcher), folders and packs; the report names the backend."""
    import prep.flow
    from prep.flow import run_flow

    monkeypatch.setattr(prep.flow, "TORCH_CHUNK", 3)
    root = synthetic_small["root"]
    video_ids = list(synthetic_small["index"]["video_id"])[::2]  # one video of each class
    records = run_flow(video_ids, root / "rawframes", tmp_path / "flow", workers=2, report=tmp_path / "flow.csv",
                       algorithm="tvl1", bound=20.0, quality=95, backend="torch", device="cpu")
    assert {r["status"] for r in records} == {"done"} and {r["backend"] for r in records} == {"torch"}
    assert "backend" in (tmp_path / "flow.csv").read_text().splitlines()[0]
    for video_id in video_ids:
        expected = sorted((root / "flow" / video_id).glob("flow_*.jpg"))
        ours = sorted((tmp_path / "flow" / video_id).glob("flow_*.jpg"))
        assert [p.name for p in ours] == [p.name for p in expected]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, expected)), video_id
    for backend in ("opencv", "torch"):  # MindSpore-I3D's naming: N flow frames, the first from frame 1 to itself
        run_flow(video_ids[:2], root / "rawframes", tmp_path / backend, workers=1, algorithm="tvl1", bound=20.0,
                 quality=95, backend=backend, device="cpu", pack=True, flow_naming="3dresnets")
    packs = sorted(p.relative_to(tmp_path / "torch") for p in (tmp_path / "torch").rglob("*.pack"))
    assert len(packs) == 2
    assert all((tmp_path / "torch" / p).read_bytes() == (tmp_path / "opencv" / p).read_bytes() for p in packs)


@pytest.mark.parametrize("device, gpus", [("cuda", 1), ("auto", 0)])
def test_the_flow_rule_asks_for_a_gpu_only_when_told(tmp_path, device, gpus):
    import yaml

    from tests.conftest import TINY, snakemake
    config = yaml.safe_load(TINY.read_text())
    config["flow"].update(backend="torch", device=device)
    overlay = tmp_path / "config.yaml"
    overlay.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "-p", "--forceall", "data/synthetic/reports/flow_0.csv", configfile=overlay)
    flow_job = result.stdout[result.stdout.index("rule flow:"):]
    assert f"--backend torch --device {device}" in flow_job
    assert f"gpu={gpus}" in flow_job.split("rule ", 2)[1]


@pytest.mark.parametrize("tvl1, option", [(None, "--tvl1 epsilon=0.05 "), ({"epsilon": 0.01}, None),
                                          ({"warps": 3}, "--tvl1 epsilon=0.05,warps=3 "), ({"eps": 1}, "'eps'")])
def test_the_flow_rule_passes_the_datasets_tvl1_parameters_under_the_configs(tmp_path, tvl1, option):
    """The synthetic dataset's own epsilon (its facts), config flow.tvl1 over it (OpenCV's default: no flag); an
    unknown name fails when the workflow loads, naming the key."""
    import yaml

    from tests.conftest import TINY, snakemake
    config = yaml.safe_load(TINY.read_text())
    if tvl1 is not None:
        config["flow"]["tvl1"] = tvl1
    overlay = tmp_path / "config.yaml"
    overlay.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "-p", "--forceall", "data/synthetic/reports/flow_0.csv", configfile=overlay,
                       check=False)
    if option == "'eps'":
        assert result.returncode and "config flow.tvl1: unknown TV-L1 parameter 'eps'" in result.stderr + result.stdout
        return
    flow_job = result.stdout[result.stdout.index("rule flow:"):]
    assert (option in flow_job) if option else "--tvl1" not in flow_job


def test_a_failing_batch_fails_its_callers_not_the_batcher(monkeypatch):
    estimate = create_batch_estimator("tvl1", "torch", "cpu", batch_size=2)
    frames = np.zeros((2, 24, 24), np.uint8)
    monkeypatch.setattr(estimate, "_compute", lambda *args: (_ for _ in ()).throw(MemoryError("device full")))
    with pytest.raises(MemoryError, match="device full"):
        estimate(frames[:1], frames[1:])
    monkeypatch.undo()
    assert not estimate(frames[:1], frames[1:]).any()  # the batcher still serves
