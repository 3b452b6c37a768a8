import logging

from vgs.corpus.manifest import as_tsv, corpus_files
from vgs.runtime import atomic_path, rule_logging

with rule_logging(snakemake):
    rows = corpus_files(snakemake.input)
    with atomic_path(snakemake.output[0]) as tmp:
        tmp.write_text(as_tsv(rows))
    logging.getLogger("vgs").info("%d files, %.1f MB; digest %s", len(rows),
                                  sum(max(n, 0) for _, n, _ in rows) / 1e6, snakemake.params.digest)
