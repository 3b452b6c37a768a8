from vgs.runtime import atomic_path, rule_logging
from vgs.synth.corpus import build_words

with rule_logging(snakemake), atomic_path(snakemake.output[0]) as tmp:
    p = dict(snakemake.params.preset)
    build_words(tmp, snakemake.input[0], p, p.pop("seed"), snakemake.threads)
