# Pretrained weights: a recipe's `pretrained: {url, sha256, source}`. Each distinct file is fetched once into
# config["pretrained_cache"]/<sha256>/<file name> by the project's downloader (resumes a .part, checks the digest),
# as a local rule: under SLURM it runs where Snakemake runs (the login node), since compute nodes often have no
# internet. Every training run that starts from the file takes it as an input (and --pretrained).
localrules:
    pretrained_weights,


rule pretrained_weights:
    output:
        os.path.join(PRETRAINED_CACHE, "{sha256}", "{name}"),
    params:
        url=pretrained_url,
    wildcard_constraints:
        sha256="[0-9a-f]{8,64}",
        name="[^/]+",
    log:
        "logs/pretrained/{sha256}_{name}.log",
    conda:
        PREP_ENV
    shell:
        "python -m train.models fetch {params.url:q} {wildcards.sha256} {output:q} > {log} 2>&1"
