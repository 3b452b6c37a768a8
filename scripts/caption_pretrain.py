from vgs.caption.sweep import write_sweep
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    p = snakemake.params.pretrain
    corpus = f"root {p['root']}" if p["root"] else ", ".join(f"{k} {v}" for k, v in p["corpus"].items())
    write_sweep(list(snakemake.input), ["none (from scratch)", f"pretrained {p['epochs']} epochs ({corpus})"],
                "init", snakemake.params.ks, p["system"], snakemake.params.epochs, snakemake.output.json,
                snakemake.output.md)
