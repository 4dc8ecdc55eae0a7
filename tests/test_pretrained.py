"""Pretrained weights (issue 11): checkpoints in the exact upstream key layouts, served from 127.0.0.1, fetched through
the real paths (`python -m train.models fetch`, the Snakemake rule pretrained_weights), loaded strictly.

Key layouts: torchvision ResNet-50 / MobileNetV2 (tests/fixtures/keys, written from torchvision 0.28's models),
pytorch-i3d and mmaction2 (the shared reference key sets), mmaction2's MobileNetV2-TSM (derived below from
mmaction2's backbone code). Every tensor is random, so "the model's tensor equals the source's" pins each one.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO, TINY, snakemake
from tests.http_server import FaultyFileServer
from train.models import PretrainedError, apply_pretrained, build_model
from train.weights import cached_file
from train.weights import fetch as fetch_weights

FIXTURE_KEYS = REPO / "tests" / "fixtures" / "keys"
REFERENCE_KEYS = next((p for p in (REPO.parent / "shared" / "reference" / "keys",
                                   REPO.parent.parent / "shared" / "reference" / "keys") if p.is_dir()), None)
needs_reference = pytest.mark.skipif(REFERENCE_KEYS is None, reason="shared/reference/keys not present")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def read_keys(path):
    keys = []
    for line in Path(path).read_text().splitlines():
        key, shape = line.split("\t")
        keys.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return keys


def filled(keys, seed=0, legacy=False):
    """Random tensors for (key, shape) pairs; legacy: without num_batches_tracked, as checkpoints saved before
    PyTorch 0.4.1 (pytorch-i3d's, torchvision's 2017 ResNets)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys:
        if key.endswith("num_batches_tracked"):
            if not legacy:
                sd[key] = torch.tensor(7, dtype=torch.long)
        else:
            sd[key] = torch.randn(shape, generator=g)
    return sd


def mmaction2_tsm_mobilenet_v2_keys(num_classes=400):
    """Checkpoint keys of mmaction2's tsm_imagenet-pretrained-mobilenetv2 (mmaction/models/backbones/mobilenet_v2.py:
    arch_settings, ConvModule = conv + bn; mobilenet_v2_tsm.py: conv[0] of a block with 3 ConvModules and a residual
    becomes TemporalShift(net=conv[0]); TSMHead fc_cls 1280 -> classes)."""
    def conv_module(prefix, cout, cin, k, groups=1):
        bn = [(f"{prefix}.bn.{n}", (cout,)) for n in ("weight", "bias", "running_mean", "running_var")]
        return [(f"{prefix}.conv.weight", (cout, cin // groups, k, k))] + bn + [(f"{prefix}.bn.num_batches_tracked", ())]

    keys = conv_module("backbone.conv1", 32, 3, 3)
    cin = 32
    for i, (t, c, n, s) in enumerate([[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                                      [6, 160, 3, 2], [6, 320, 1, 1]], start=1):
        for j in range(n):
            hidden, prefix = cin * t, f"backbone.layer{i}.{j}.conv"
            residual = (s if j == 0 else 1) == 1 and cin == c
            block = []
            if t != 1:
                block.append(conv_module(f"{prefix}.0" + (".net" if residual else ""), hidden, cin, 1))
            block.append(conv_module(f"{prefix}.{len(block)}", hidden, hidden, 3, groups=hidden))
            block.append(conv_module(f"{prefix}.{len(block)}", c, hidden, 1))
            keys += [k for part in block for k in part]
            cin = c
    keys += conv_module("backbone.conv2", 1280, 320, 1)
    return keys + [("cls_head.fc_cls.weight", (num_classes, 1280)), ("cls_head.fc_cls.bias", (num_classes,))]


def save(sd, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_cli(url, sha256, out):
    """`python -m train.weights fetch` (what rule pretrained_weights runs); the other tests call its function."""
    return subprocess.run([sys.executable, "-m", "train.weights", "fetch", url, str(out), "--sha256", sha256,
                           "--retries", "0"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def served(tmp_path):
    """(save(sd, name) -> (url, sha256), cache dir, server): files served from 127.0.0.1."""
    root = tmp_path / "upstream"
    root.mkdir()
    with FaultyFileServer(root) as server:
        def publish(sd, name):
            return server.url(name), save(sd, root / name)
        yield publish, tmp_path / "cache", server


def fetched(publish, cache, sd, name, source, prefix=None):
    """Publish sd as `name`, fetch it into the cache (downloader over HTTP); the recipe's spec and the local path."""
    url, digest = publish(sd, name)
    spec = {"url": url, "sha256": digest[:prefix] if prefix else digest, "source": source}
    return spec, fetch_weights(url, spec["sha256"], cached_file(spec, cache))


def test_torchvision_resnet50_inflated_into_i3d_r50(served):
    publish, cache, _ = served
    source = filled(read_keys(FIXTURE_KEYS / "torchvision_resnet50_keys.txt"), legacy=True)
    spec, path = fetched(publish, cache, source, "resnet50-0676ba61.pth", "torchvision", prefix=8)  # prefix, as torchvision
    model = build_model("i3d_r50", 101)
    record = apply_pretrained(model, {"arch": "i3d_r50", "pretrained": spec}, path)
    assert record == {**spec, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "head": "reinitialised"}
    ours = model.state_dict()
    convs = 0
    for key, value in source.items():
        if key.startswith("fc."):
            continue
        got = ours["backbone." + key]
        if value.dim() == 4:  # inflated: repeated over time / kernel_t
            kt = got.shape[2]
            assert torch.allclose(got, value.unsqueeze(2).expand_as(got) / kt), key
            convs += 1
        else:
            assert torch.equal(got, value), key
    assert convs == 53
    assert model.fc.weight.shape == (101, 2048) and model.fc.weight.std() < 0.02  # normal(0, 0.01): a fresh head


def test_torchvision_resnet50_cross_modality_into_tsn_flow(served):
    publish, cache, _ = served
    source = filled(read_keys(FIXTURE_KEYS / "torchvision_resnet50_keys.txt"), seed=1)
    spec, path = fetched(publish, cache, source, "resnet50-0676ba61.pth", "torchvision", prefix=8)
    model = build_model("tsn_r50", 51, in_channels=10)
    apply_pretrained(model, {"arch": "tsn_r50", "pretrained": spec}, path)
    conv1 = source["conv1.weight"]
    assert torch.allclose(model.backbone.conv1.weight, conv1.mean(dim=1, keepdim=True).expand(-1, 10, -1, -1))
    assert torch.equal(model.backbone.layer3[5].conv2.weight, source["layer3.5.conv2.weight"])


def test_torchvision_mobilenet_v2_into_tsm_mobilenet_v2(served):
    publish, cache, _ = served
    source = filled(read_keys(FIXTURE_KEYS / "torchvision_mobilenet_v2_keys.txt"))
    spec, path = fetched(publish, cache, source, "mobilenet_v2-b0353104.pth", "torchvision", prefix=8)
    model = build_model("tsm_mobilenet_v2", 400)
    assert apply_pretrained(model, {"arch": "tsm_mobilenet_v2", "pretrained": spec}, path)["head"] == "reinitialised"
    # both layouts list the trunk in forward order (conv, then its BN): tensor k of one is tensor k of the other
    theirs = [v for k, v in source.items() if not k.startswith("classifier.")]
    ours = [v for k, v in model.state_dict().items() if k.startswith("backbone.")]
    assert len(theirs) == len(ours) == 312
    assert all(torch.equal(a, b) for a, b in zip(theirs, ours))
    flow = build_model("tsm_mobilenet_v2", 400, in_channels=10)  # cross-modality: the stem averaged over RGB
    apply_pretrained(flow, {"arch": "tsm_mobilenet_v2", "pretrained": spec}, path)
    stem = source["features.0.0.weight"]
    assert torch.allclose(flow.backbone.conv1.conv.weight, stem.mean(dim=1, keepdim=True).expand(-1, 10, -1, -1))


def test_unpinned_weights_are_cached_by_url_and_recorded_by_digest(served):
    """pytorch-i3d publishes no digest (recipes say sha256: null): the cache entry is named after the URL, and the
    record carries the digest of the file that was loaded."""
    publish, cache, server = served
    source = filled(read_keys(FIXTURE_KEYS / "torchvision_mobilenet_v2_keys.txt"))
    url, digest = publish(source, "mobilenet_v2-b0353104.pth")
    spec = {"url": url, "sha256": None, "source": "torchvision"}
    path = cached_file(spec, cache)
    assert path.parent.name.startswith("url-") and path.name == "mobilenet_v2-b0353104.pth"
    server.drop_connection("mobilenet_v2-b0353104.pth", attempts=1, after=100_000)  # resumed, not restarted
    fetch_weights(url, None, path)
    assert [r[1] for r in server.requests_for("mobilenet_v2-b0353104.pth")] == [None, "bytes=100000-"]
    record = apply_pretrained(build_model("tsm_mobilenet_v2", 5), {"arch": "tsm_mobilenet_v2", "pretrained": spec},
                              path)
    assert record == {**spec, "sha256": digest, "head": "reinitialised"}


def test_mmaction2_tsm_mobilenet_v2_loads_strictly(served):
    publish, cache, _ = served
    source = filled(mmaction2_tsm_mobilenet_v2_keys())
    preprocessor = {"data_preprocessor.mean": torch.zeros(3, 1, 1), "data_preprocessor.std": torch.ones(3, 1, 1)}
    spec, path = fetched(publish, cache, {"state_dict": {**source, **preprocessor}, "meta": {"epoch": 100}},
                         "tsm_imagenet-pretrained-mobilenetv2_8xb16-1x1x8-100e_kinetics400-rgb_20230414-401127fd.pth",
                         "mmaction2")
    model = build_model("tsm_mobilenet_v2", 400)
    assert apply_pretrained(model, {"arch": "tsm_mobilenet_v2", "pretrained": spec}, path)["head"] == "loaded"
    ours = model.state_dict()
    assert len(ours) == len(source)
    for key, value in source.items():
        assert torch.equal(ours[key.replace("cls_head.fc_cls.", "fc.")], value), key


@needs_reference
def test_pytorch_i3d_rgb_and_flow_imagenet(served):
    publish, cache, _ = served
    keys = read_keys(REFERENCE_KEYS / "i3d_inception_pytorch_i3d_keys.txt")
    rgb = filled(keys, seed=2, legacy=True)
    flow = filled([(k, (s[0], 2) + s[2:] if k == "Conv3d_1a_7x7.conv3d.weight" else s) for k, s in keys], seed=3,
                  legacy=True)
    rgb_spec, rgb_path = fetched(publish, cache, rgb, "rgb_imagenet.pt", "pytorch_i3d")
    flow_spec, flow_path = fetched(publish, cache, flow, "flow_imagenet.pt", "pytorch_i3d")
    for spec, path, source, channels in ((rgb_spec, rgb_path, rgb, 3), (flow_spec, flow_path, flow, 2)):
        model = build_model("i3d_inception", 101, in_channels=channels)
        assert apply_pretrained(model, {"arch": "i3d_inception", "pretrained": spec}, path)["head"] == "reinitialised"
        ours = model.state_dict()
        for key, value in source.items():
            if not key.startswith("logits."):
                assert torch.equal(ours[key], value), key
        assert all(ours[k].item() == 0 for k in ours if k.endswith("num_batches_tracked"))
    # rgb weights into a flow model: the stem averaged over RGB and repeated over the 2 flow channels
    model = build_model("i3d_inception", 101, in_channels=2)
    apply_pretrained(model, {"arch": "i3d_inception", "pretrained": rgb_spec}, rgb_path)
    stem = rgb["Conv3d_1a_7x7.conv3d.weight"]
    assert torch.allclose(model.Conv3d_1a_7x7.conv3d.weight, stem.mean(dim=1, keepdim=True).expand(-1, 2, -1, -1, -1))


@needs_reference
def test_mmaction2_i3d_r50_loads_with_its_head(served):
    publish, cache, _ = served
    source = filled(read_keys(REFERENCE_KEYS / "mmaction2_i3d_r50_32x2x1_keys.txt"), seed=4)
    spec, path = fetched(publish, cache, {"state_dict": source}, "i3d_r50.pth", "mmaction2")
    model = build_model("i3d_r50", 400)
    assert apply_pretrained(model, {"arch": "i3d_r50", "pretrained": spec}, path)["head"] == "loaded"
    assert torch.equal(model.backbone.layer2[1].conv1.weight, source["backbone.layer2.1.conv1.conv.weight"])
    assert torch.equal(model.fc.weight, source["cls_head.fc_cls.weight"])


@needs_reference
def test_non_local_blocks_start_fresh_only_from_a_2d_network(tmp_path):
    """mmaction2's I3D-NL recipes start from ImageNet ResNet-50: the non-local blocks are new (identity at start).
    An mmaction2 I3D checkpoint without them is not an I3D-NL checkpoint: refused. (Local paths as `url`.)"""
    resnet = tmp_path / "resnet50-0676ba61.pth"
    digest = save(filled(read_keys(FIXTURE_KEYS / "torchvision_resnet50_keys.txt"), legacy=True), resnet)
    model = build_model("i3d_r50_nl_dot_product", 400)
    spec = {"url": str(resnet), "sha256": digest, "source": "torchvision"}
    assert apply_pretrained(model, {"arch": "i3d_r50_nl_dot_product", "pretrained": spec})["head"] == "reinitialised"
    assert torch.all(model.backbone.layer2[1].nonlocal_block.bn.weight == 0)  # the block's identity init
    plain = tmp_path / "i3d_r50.pth"
    digest = save({"state_dict": filled(read_keys(REFERENCE_KEYS / "mmaction2_i3d_r50_32x2x1_keys.txt"))}, plain)
    spec = {"url": str(plain), "sha256": digest, "source": "mmaction2"}
    with pytest.raises(PretrainedError, match=r"missing .*backbone\.layer2\.1\.nonlocal_block\.g\.weight"):
        apply_pretrained(build_model("i3d_r50_nl_dot_product", 400), {"arch": "i3d_r50_nl_dot_product",
                                                                        "pretrained": spec})


def test_wrong_checksum_truncated_file_and_missing_keys_are_one_line(served, tmp_path):
    publish, cache, server = served
    source = filled(read_keys(FIXTURE_KEYS / "torchvision_mobilenet_v2_keys.txt"))
    url, digest = publish(source, "mobilenet_v2-b0353104.pth")
    settings = {"arch": "tsm_mobilenet_v2", "pretrained": {"url": url, "sha256": digest, "source": "torchvision"}}

    # a wrong checksum: the download is refused, nothing stands under the final name
    wrong = "0" * 64
    out = cache / wrong / "mobilenet_v2-b0353104.pth"
    line = one_error_line(fetch_cli(url, wrong, out))
    assert url in line and "mismatch" in line and not out.exists()
    with pytest.raises(PretrainedError, match="does not match"):  # a prefix is checked as well
        fetch_weights(url, wrong[:8], cache / wrong[:8] / out.name)
    assert not (cache / wrong[:8] / out.name).exists()

    # a truncated file (served so, or cut on disk): its digest differs, one line names it
    upstream = Path(server.root) / "mobilenet_v2-b0353104.pth"
    whole = upstream.read_bytes()
    upstream.write_bytes(whole[: len(whole) // 2])
    line = one_error_line(fetch_cli(url, digest, cache / digest / out.name))
    assert "mismatch" in line
    local = tmp_path / "local" / out.name
    local.parent.mkdir()
    local.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PretrainedError) as error:
        apply_pretrained(build_model("tsm_mobilenet_v2", 5), settings, local)
    assert str(local) in str(error.value) and "does not match" in str(error.value) and "\n" not in str(error.value)

    # served whole again, it is fetched (the failed attempt left no .part behind to resume from)
    upstream.write_bytes(whole)
    assert fetch_weights(url, digest[:8], cache / digest[:8] / out.name).read_bytes() == whole

    # a file with keys missing (and its right digest): never a partial load
    partial = {k: v for k, v in source.items() if not k.startswith("features.17.")}
    spec, path = fetched(publish, cache, partial, "partial.pth", "torchvision")
    model = build_model("tsm_mobilenet_v2", 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PretrainedError) as error:
        apply_pretrained(model, {"arch": "tsm_mobilenet_v2", "pretrained": spec}, path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and "missing" in message
    assert "backbone.layer7.0.conv.0.conv.weight" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched

    # an unexpected key is named too
    extra = {**source, "features.19.0.weight": torch.zeros(1)}
    spec, path = fetched(publish, cache, extra, "extra.pth", "torchvision")
    with pytest.raises(PretrainedError, match=r"features\.19\.0\.weight"):
        apply_pretrained(build_model("tsm_mobilenet_v2", 5), {"arch": "tsm_mobilenet_v2", "pretrained": spec}, path)


def test_prefix_digest_never_unpickles_more_than_tensors(served):
    publish, cache, _ = served
    source = filled(read_keys(FIXTURE_KEYS / "torchvision_mobilenet_v2_keys.txt"))
    checkpoint = {"state_dict": source, "meta": {"config": Path("x")}}  # a pickled object besides the tensors
    spec, path = fetched(publish, cache, checkpoint, "mobilenet_v2-pickled.pth", "torchvision", prefix=8)
    with pytest.raises(PretrainedError, match="full sha256"):
        apply_pretrained(build_model("tsm_mobilenet_v2", 5), {"arch": "tsm_mobilenet_v2", "pretrained": spec}, path)
    full = {**spec, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    record = apply_pretrained(build_model("tsm_mobilenet_v2", 5), {"arch": "tsm_mobilenet_v2", "pretrained": full},
                              path)
    assert record["sha256"] == full["sha256"]


def test_null_and_bad_specs():
    model = build_model("tsn_r18", 5, base_channels=8)
    assert apply_pretrained(model, {"arch": "tsn_r18", "pretrained": None}, None) is None
    assert apply_pretrained(model, {"arch": "tsn_r18"}, None) is None
    with pytest.raises(PretrainedError, match="pretrained: null"):
        apply_pretrained(model, {"arch": "tsn_r18", "pretrained": None}, "some.pth")
    with pytest.raises(PretrainedError, match="8 to 64 hex"):
        apply_pretrained(model, {"arch": "tsn_r18", "pretrained": {"url": "a.pth", "sha256": "abc", "source":
                                                                    "torchvision"}}, "a.pth")
    with pytest.raises(PretrainedError, match="caffe"):
        apply_pretrained(model, {"arch": "tsn_r18", "pretrained": {"url": "a.pth", "sha256": "abcdef12", "source":
                                                                    "caffe"}}, "a.pth")


# ---------------------------------------------------------------------------------------------------------------------
# training: the pipeline fetches once and records the weights; a resumed run keeps its own


TINY_TSN = {"arch": "tsn_r18", "model_options": {"base_channels": 8}}


def tiny_torchvision_checkpoint(seed=5):
    """A torchvision-layout ResNet-18 of the tiny recipe's width (base_channels 8), with ImageNet's 1000 classes."""
    with torch.device("meta"):
        keys = [(k[len("backbone."):] if k.startswith("backbone.") else k, tuple(v.shape))
                for k, v in build_model("tsn_r18", 1000, **TINY_TSN["model_options"]).state_dict().items()]
    return filled(keys, seed=seed)


def test_resumed_run_does_not_reload_pretrained(synthetic_small, served, tmp_path):
    from tests.test_training import SETTINGS, train_command, write_lists

    publish, cache, _ = served
    source = tiny_torchvision_checkpoint()
    settings = {**SETTINGS, **TINY_TSN, "epochs": 1}
    settings["pretrained"], path = fetched(publish, cache, source, "resnet18-tiny.pth", "torchvision", prefix=12)
    lists = write_lists(synthetic_small, tmp_path / "lists")
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = train_command(lists, synthetic_small["root"] / "rawframes", run_dir, settings)
    first = subprocess.run(command + ["--pretrained", str(path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    final = torch.load(run_dir / "final.pt", weights_only=False)
    assert final["run_info"]["pretrained"] == {**settings["pretrained"], "head": "reinitialised",
                                               "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    epoch1 = torch.load(run_dir / "checkpoints" / "epoch_0001.pt", weights_only=False)
    assert epoch1["run_info"]["pretrained"] == final["run_info"]["pretrained"]

    # two more epochs from that checkpoint, with the weights file now corrupt: a reload would fail loudly
    path.write_bytes(path.read_bytes()[:100])
    more = train_command(lists, synthetic_small["root"] / "rawframes", run_dir, {**settings, "epochs": 2})
    resumed = subprocess.run(more + ["--pretrained", str(path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout
    again = torch.load(run_dir / "final.pt", weights_only=False)
    assert again["epoch"] == 2 and again["run_info"]["pretrained"] == final["run_info"]["pretrained"]

    # a fresh run with that file: one line, no traceback
    fresh = subprocess.run(train_command(lists, synthetic_small["root"] / "rawframes", tmp_path / "fresh", settings)
                           + ["--pretrained", str(path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert str(path) in one_error_line(fresh)


@pytest.mark.slow
def test_pipeline_fetches_once_trains_and_records(served, tmp_path):
    """The tiny configuration, TSN rgb only, from a served torchvision-layout file: rule pretrained_weights fetches it
    (once, for two consumers), training loads it, the checkpoint and the results JSON record it."""
    publish, cache, server = served
    url, digest = publish(tiny_torchvision_checkpoint(), "resnet18-tiny.pth")
    spec = {"url": url, "sha256": digest[:8], "source": "torchvision"}
    config = yaml.safe_load(TINY.read_text())
    config.update(models=["tsn"], modes=["rgb"], pretrained_cache=str(cache))
    config["synthetic"].update(videos_per_class=6)  # what is tested here is the weights' path, not accuracy
    config["recipes"]["tsn"]["synthetic"].update(epochs=2, pretrained=spec)
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    snakemake(workdir, "--cores", "2", "results/tsn_synthetic_rgb.json", configfile=configfile)
    cached = cache / digest[:8] / "resnet18-tiny.pth"
    assert cached.is_file() and len(server.requests_for("resnet18-tiny.pth")) == 1
    final = torch.load(workdir / "work" / "tsn_synthetic_rgb" / "final.pt", weights_only=False)
    assert final["run_info"]["pretrained"] == {**spec, "sha256": digest, "head": "reinitialised"}
    result = json.loads((workdir / "results" / "tsn_synthetic_rgb.json").read_text())
    assert result["config"]["pretrained"] == spec  # the recipe's key; the checkpoint has the file's full digest
    assert result["protocol"]["pretrained"] == final["run_info"]["pretrained"]  # the file actually loaded


@needs_reference
def test_weights_without_a_published_sha256_are_pinned_by_their_git_blob(served, tmp_path):
    """pytorch-i3d publishes no digest: its recipes pin the git blob id (sha1 of "blob <size>\\0" + bytes, what
    `git ls-tree` lists); a file that differs is refused by the fetch and by the load, in one line."""
    publish, cache, server = served
    keys = read_keys(REFERENCE_KEYS / "i3d_inception_pytorch_i3d_keys.txt")
    url, _ = publish(filled(keys), "rgb_imagenet.pt")
    upstream = Path(server.root) / "rgb_imagenet.pt"
    blob = hashlib.sha1(b"blob %d\0" % upstream.stat().st_size + upstream.read_bytes()).hexdigest()
    if shutil.which("git"):  # the id git itself gives the file
        found = subprocess.run(["git", "hash-object", str(upstream)], capture_output=True, text=True, check=True)
        assert found.stdout.strip() == blob
    spec = {"url": url, "sha256": None, "source": "pytorch_i3d", "git_blob": blob}
    out = cached_file(spec, cache)
    assert out.parent.name == f"git-{blob}"
    result = subprocess.run([sys.executable, "-m", "train.weights", "fetch", url, str(out), "--git-blob", blob,
                             "--retries", "0"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and "git blob checked" in result.stdout, result.stderr
    record = apply_pretrained(build_model("i3d_inception", 5), {"arch": "i3d_inception", "pretrained": spec}, out)
    assert record["git_blob"] == blob and record["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()

    wrong = dict(spec, git_blob="0" * 40)
    line = one_error_line(subprocess.run(
        [sys.executable, "-m", "train.weights", "fetch", url, str(cached_file(wrong, cache)), "--git-blob", "0" * 40,
         "--retries", "0"], capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}))
    assert "git blob" in line and "does not match" in line and not cached_file(wrong, cache).exists()
    with pytest.raises(PretrainedError, match="git blob .* does not match"):
        apply_pretrained(build_model("i3d_inception", 5), {"arch": "i3d_inception", "pretrained": wrong}, out)
