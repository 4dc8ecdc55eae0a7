# Pretrained weights: a recipe's `pretrained: {url, sha256, source}`. Each distinct file is fetched once into
# config["pretrained_cache"]/<sha256, git-BLOB or url-HASH>/<file name> by the project's downloader (resumes a .part, checks
# the digest), as a local rule: under SLURM it runs where Snakemake runs (the login node), since compute nodes often have no
# internet. Every training run that starts from the file takes it as an input (and --pretrained).
localrules:
    pretrained_weights,


rule pretrained_weights:
    output:
        os.path.join(PRETRAINED_CACHE, "{key}", "{name}"),
    params:
        source=pretrained_fetch,
    wildcard_constraints:
        key="[0-9a-f]{8,64}|git-[0-9a-f]{40}|url-[0-9a-f]{16}",
        name="[^/]+",
    log:
        "logs/pretrained/{key}_{name}.log",
    conda:
        PREP_ENV
    shell:
        "python -m train.weights fetch {params.source} {output:q} > {log} 2>&1"
