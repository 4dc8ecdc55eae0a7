snakemake --cores 2 results/i3d_synthetic_joint.json     # one target: only the jobs it needs
snakemake --configfile tests/configs/tiny.yaml --cores 2 all   # every stage on 80 tiny videos, a few minutes
snakemake -n all                                          # what would run, and why
snakemake --cores 2 all --rerun-incomplete                # after a crash or kill
