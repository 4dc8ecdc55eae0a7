# actionflow: videos → frames and TV-L1 flow → annotation files → TSN / TSM / I3D baselines, for every
# model × dataset × mode. `snakemake --cores 2 all` runs the default (synthetic) configuration; see README.md.

from snakemake.utils import min_version

min_version("8.20")


configfile: "config.yaml"


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
