import logging
import os

from vgs.corpus.manifest import as_tsv, corpus_files
from vgs.runtime import atomic_path, rule_logging

with rule_logging(snakemake):
    verify, out = snakemake.params.verify, snakemake.output[0]
    # content: the hashes cached while Snakemake took the digest (common.smk corpus_digest)
    cache = os.path.join(os.path.dirname(out), f".hashes_{snakemake.wildcards.corpus}.json") if verify == "content" else None
    rows = corpus_files(snakemake.input, verify, cache)
    with atomic_path(out) as tmp:
        tmp.write_text(as_tsv(rows))
    logging.getLogger("vgs").info("%d files, %.1f MB; digest %s", len(rows),
                                  sum(max(r[1], 0) for r in rows) / 1e6, snakemake.params.digest)
