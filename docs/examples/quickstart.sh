python3 -m venv .venv && . .venv/bin/activate && pip install "torch==2.13.0" -e . && snakemake --cores 2 all
