from vgs.runtime import atomic_path, rule_logging
from vgs.synth.corpus import build_flickr

with rule_logging(snakemake), atomic_path(snakemake.output[0]) as tmp:
    p = dict(snakemake.params.preset)
    build_flickr(tmp, p, p.pop("seed"), snakemake.threads)
