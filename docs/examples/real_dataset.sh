snakemake --cores 8 --config 'datasets=[ucf101]' -- results/i3d_ucf101_joint.json
