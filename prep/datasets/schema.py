"""The config schema with the dataset registry filled in: ``workflow/schemas/config.schema.yaml`` names no dataset;
:func:`config_schema` adds, from :data:`prep.datasets.DATASETS` and each dataset's ``FACTS``, the ``datasets`` enum,
the ``storage`` and ``frames.datasets`` keys, the ``sources.<dataset>`` settings with their default URLs, the
per-dataset recipe keys and the class-folder forms. ``common.smk`` validates the config against it."""
import copy
from pathlib import Path

from prep.base.config import load_yaml
from prep.datasets import DATASETS, STORAGES, class_folder_forms, facts, real_datasets

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def sources_schema(dataset_facts):
    """The ``sources.<dataset>`` object of a downloaded dataset: its URL lists with their defaults, checksums,
    local copies and the share of videos that may be missing."""
    properties = {key: {"type": "array", "items": {"type": "string"}, "default": list(source.default),
                        "description": source.description}
                  for key, source in dataset_facts.sources.items()}
    properties.update({
        "checksums": {"$ref": "#/$defs/checksums"},
        "local": {"$ref": "#/$defs/local"},
        "max_missing_fraction": {"type": "number", "minimum": 0, "maximum": 1,
                                 "default": dataset_facts.max_missing_fraction,
                                 "description": "fail when a larger share of the listed videos is missing "
                                                f"(data/{dataset_facts.name}/missing.csv)"},
    })
    return {"type": "object", "additionalProperties": False, "default": {}, "properties": properties}


def config_schema(path=SCHEMA):
    """The schema at ``path`` (a dict), its dataset-dependent parts made from the registry."""
    schema = copy.deepcopy(load_yaml(path, "schema"))
    properties, defs = schema["properties"], schema["$defs"]
    properties["datasets"]["items"]["enum"] = list(DATASETS)
    properties["storage"]["properties"] = {name: {"$ref": "#/$defs/storage"} for name in DATASETS}
    frames = properties["frames"]["properties"]
    frames["datasets"]["propertyNames"] = {"enum": list(DATASETS)}
    frames["class_folders"]["enum"] = list(class_folder_forms())
    frames["class_folders"]["default"] = class_folder_forms()[0]
    properties["sources"]["properties"].update({name: sources_schema(facts(name)) for name in real_datasets()})
    defs["storage"]["enum"] = list(STORAGES)
    defs["model_recipes"]["properties"].update({name: {"$ref": "#/$defs/recipe_or_null"} for name in DATASETS})
    return schema
