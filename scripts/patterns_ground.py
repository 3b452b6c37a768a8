import json

from vgs.patterns.grounding import ground_split, write_groundings
from vgs.runtime import atomic_path, rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    i, p = snakemake.input, snakemake.params.patterns
    arrays, items, report = ground_split(i.towers, i.convmap, i.fbank, i.vad, i.utterances, i.images, p,
                                         i.onnx or None, snakemake.threads)
    write_groundings(snakemake.output.h5, arrays, items, p, report)
    with atomic_path(snakemake.output.report) as tmp:
        tmp.write_text(json.dumps(report, indent=1) + "\n")
