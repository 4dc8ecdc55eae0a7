snakemake --profile workflow/profiles/slurm all                          # everything
snakemake --profile workflow/profiles/slurm results/tsm_synthetic_rgb.json  # one target and what it needs
snakemake --profile workflow/profiles/slurm all --configfile docs/examples/config/cluster.yaml  # GPUs and nodes
