# Pretrained weights: a recipe's `pretrained: {url, sha256, source}`. Each distinct file is fetched once into
# config["pretrained_cache"]/<sha256>/<file name> by the project's downloader (resumes a .part, checks the digest),
# as a local rule: under SLURM it runs where Snakemake runs (the login node), since compute nodes often have no
# internet. Every training run that starts from the file takes it as an input (rule train: --pretrained).
import shlex


localrules:
    pretrained_weights,


PRETRAINED_CACHE = os.path.expanduser(config["pretrained_cache"])


def run_pretrained(model, mode):
    """The resolved `pretrained` of a run, checked, or None (torch is imported on first use, not at parse time)."""
    from train.models.pretrained import pretrained_spec
    from train.recipe import resolve

    return pretrained_spec(resolve(config["recipes"][model], mode))


def pretrained_file(wildcards):
    """Input of rule train: the cached (or local) weights file of the run, none for `pretrained: null`."""
    from train.models.pretrained import cached_file

    spec = run_pretrained(wildcards.model, wildcards.mode)
    return [] if spec is None else str(cached_file(spec, PRETRAINED_CACHE))


def pretrained_option(wildcards, input):
    return f"--pretrained {shlex.quote(str(input.pretrained))}" if input.pretrained else ""


def pretrained_url(wildcards):
    """The URL of a cached file, from the recipes of the configured models that name it."""
    from train.models.pretrained import cached_file, is_remote

    wanted = os.path.join(PRETRAINED_CACHE, wildcards.sha256, wildcards.name)
    for model in MODELS:
        for mode in MODES:
            spec = run_pretrained(model, mode)
            if spec and is_remote(spec["url"]) and str(cached_file(spec, PRETRAINED_CACHE)) == wanted:
                return spec["url"]
    raise ValueError(f"{wanted}: no recipe of models {MODELS} names these pretrained weights")


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
