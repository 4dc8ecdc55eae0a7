"""One home per dataset: its module's FACTS and one registry line; the schema, common.smk and the CLIs follow."""
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from prep.datasets import DATASETS, dataset_module, facts, real_datasets
from prep.datasets.schema import SCHEMA, config_schema
from tests.conftest import BIN, REPO, snakemake_executable


def test_no_file_but_the_registry_spells_the_dataset_names():
    schema_text = SCHEMA.read_text()
    for name in ("ucf101", "hmdb51", "kinetics400"):
        assert name not in schema_text.replace(f"FACTS.storage ({name}", "")  # a comment may name an example
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    assert "from prep.datasets import" in common and "kinetics400" not in common
    assert "DATASET_NAMES" not in (REPO / "prep" / "base" / "names.py").read_text()
    for name in DATASETS:  # one interface: every stage reaches every dataset the same way
        module = dataset_module(name)
        for attribute in ("read_index", "locate_videos", "list_name", "json_name", "FACTS"):
            assert hasattr(module, attribute), f"prep.datasets.{name} has no {attribute}"
        assert module.FACTS.name == name
        assert hasattr(module, "arrange_sources") == (name in real_datasets())


def test_the_schema_is_filled_from_the_facts():
    schema = config_schema()
    properties = schema["properties"]
    assert properties["datasets"]["items"]["enum"] == list(DATASETS)
    assert sorted(properties["storage"]["properties"]) == sorted(DATASETS)
    assert properties["frames"]["properties"]["datasets"]["propertyNames"]["enum"] == list(DATASETS)
    sources = properties["sources"]["properties"]
    assert sorted(k for k, v in sources.items() if v.get("type") == "object") == sorted(real_datasets())
    ucf101 = sources["ucf101"]["properties"]
    assert ucf101["urls"]["default"] == list(facts("ucf101").sources["urls"].default)
    assert ucf101["urls"]["default"][0].endswith("UCF101.rar")
    kinetics = sources["kinetics400"]["properties"]
    assert kinetics["max_missing_fraction"]["default"] == 0.15
    assert kinetics["link_lists"]["default"][0].endswith("train_link.list")
    assert properties["frames"]["properties"]["class_folders"]["enum"] == ["mmaction2", "label"]
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    jsonschema.validate(config, schema)
    with pytest.raises(jsonschema.ValidationError, match="'nosuchset' is not one of"):
        jsonschema.validate({**config, "datasets": ["nosuchset"]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "storage": {"ucf101": "folder"}}, schema)


@pytest.mark.parametrize("name, frames, flow", [
    ("synthetic", {"shards": 2, "workers": 1}, {"shards": 4, "workers": 1}),
    ("ucf101", {"shards": 16, "workers": 4}, {"shards": 64, "workers": 8}),
    ("hmdb51", {"shards": 8, "workers": 4}, {"shards": 32, "workers": 8}),
    ("kinetics400", {"shards": 256, "workers": 4}, {"shards": 1024, "workers": 8}),
])
def test_job_sizes_follow_from_a_datasets_size(name, frames, flow):
    assert facts(name).prep_jobs("frames") == frames == facts(name).prep_jobs("reencode")
    assert facts(name).prep_jobs("flow") == flow


NEW_DATASET = '''"""A dataset added for the test: UCF101's files under another name and URLs."""
import functools

from prep.datasets import DatasetFacts, SourceList, split_list_name, ucf101

FACTS = DatasetFacts(name="toyset", videos=3000, storage="packs", frame_size={"short_side": 128},
                     sources={"urls": SourceList(("https://example.org/toyset.zip",), "the archive")})
read_index = functools.partial(ucf101.read_index, name="toyset")
locate_videos = ucf101.locate_videos
arrange_sources = ucf101.arrange_sources
list_name = functools.partial(split_list_name, "toyset")


def json_name(split, subset):
    return f"toyset_0{split}.json"
'''


def test_a_new_dataset_is_one_module_and_one_registry_line(tmp_path):
    """A copy of the repository gains a dataset by a module and one line; Snakemake then plans it end to end
    (fetch from its URL, its storage, job sizes and frame size) and the CLIs accept it."""
    repo = tmp_path / "repo"
    for part in ("prep", "train", "workflow", "Snakefile", "config.yaml"):
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy)(REPO / part, repo / part)
    (repo / "prep" / "datasets" / "toyset.py").write_text(NEW_DATASET)
    registry = repo / "prep" / "datasets" / "__init__.py"
    text = registry.read_text()
    assert text.count('    "kinetics400",\n') == 1
    registry.write_text(text.replace('    "kinetics400",\n', '    "kinetics400",\n    "toyset",\n'))
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(datasets=["toyset"], models=["tsn"], modes=["rgb"])
    config["recipes"]["tsn"]["toyset"] = {"base": "tsn_r18_synthetic"}
    (repo / "toy.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(repo)}
    result = subprocess.run([snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--directory",
                             str(tmp_path / "work"), "--configfile", str(repo / "toy.yaml"), "-n", "-p", "--cores",
                             "64", "all"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = result.stdout
    assert "https://example.org/toyset.zip" in plan  # its URL, from its facts, reaches prep fetch
    frames_line = plan.split("python -m prep frames", 1)[1].split("\n", 1)[0]
    assert "--pack" in frames_line and "--short-side 128" in frames_line and "--num-shards 4" in frames_line
    assert "toyset_train_split_1_rawframes.txt" in plan
    cli = subprocess.run([sys.executable, "-m", "prep", "fetch", "--help"], capture_output=True, text=True,
                         cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert "toyset" in cli.stdout, cli.stderr
