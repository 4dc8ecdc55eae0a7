# actionflow: videos → frames and TV-L1 flow → annotation files → TSN / TSM / I3D baselines, for every
# model × dataset × mode. `snakemake --cores 2 all` runs the default (synthetic) configuration; see README.md.

import sys

from snakemake.utils import min_version

min_version("8.20")

sys.path.insert(0, workflow.basedir)  # prep.base.config (light) without installing the package
from prep.base.config import WORKFLOW_CONFIGFILE, ConfigError, check_sources

# before `configfile:` merges anything: YAML alias bombs in every source of configuration stop here, naming the file
# (Snakemake has read and merged --configfile files already, and copied each mapping an alias repeats: a bomb of
# mappings given there needs `python -m prep check-config` first; see docs/configuration.md)
try:
    check_sources(workflow.config_settings.configfiles, workflow.config_settings.config,
                  workflow_configfile=WORKFLOW_CONFIGFILE)
except ConfigError as error:  # raised here: Snakemake's report shows this line, not prep.base.config's frames
    raise ConfigError(str(error)) from None


configfile: WORKFLOW_CONFIGFILE


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/videos.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/annotations.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_results(),
        "results/summary.csv",
        "results/summary.md",
        report_targets(),
    default_target: True
