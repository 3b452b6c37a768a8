from vgs.caption.bench import write_benchmark
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    write_benchmark(dict(snakemake.params.bench), snakemake.params.mem_mb, list(snakemake.input),
                    snakemake.output.json, snakemake.output.md)
