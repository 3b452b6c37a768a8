import json

from vgs.fragment.bench import benchmark
from vgs.runtime import atomic_path, rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    res = benchmark(**snakemake.params.bench, embed_dim=snakemake.params.embed_dim,
                    mem_mb=snakemake.params.eval_mem_mb)
    with atomic_path(snakemake.output[0]) as tmp:
        tmp.write_text(json.dumps(res, indent=1))
