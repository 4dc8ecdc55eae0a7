snakemake --report report.html      # one self-contained page
snakemake --report report.zip       # the page plus every figure and table as files
python -m train.report curves work/tsn_synthetic_rgb/log.jsonl --out curves.png
