# Corpus stages: the embedded synthetic corpus (offline) and ingest of any Flickr8k + FACC directory.


rule synthetic_corpus:
    """Images with spoken captions in the Flickr8k + FACC layout, plus ground truth."""
    output:
        directory("resources/synthetic/flickr8k"),
    params:
        preset=synth_preset("flickr"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        log_path("synthetic_corpus"),
    benchmark:
        bench_path("synthetic_corpus")
    conda:
        VGS_ENV
    script:
        "../../scripts/synthetic_corpus.py"


rule synthetic_words:
    """The word-aligned corpus for word-CNN pretraining (WSJ's role), as a Kaldi data dir + CTM;
    its vocabulary is drawn from the training captions of the corpus in use (generated or real)."""
    input:
        "results/manifests/utterances.tsv",
    output:
        directory("resources/synthetic/words"),
    params:
        preset=synth_preset("words"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        log_path("synthetic_words"),
    benchmark:
        bench_path("synthetic_words")
    conda:
        VGS_ENV
    script:
        "../../scripts/synthetic_words.py"


rule corpus_manifest:
    """Every file of a corpus with size and mtime.  Snakemake sees a directory input change only
    when entries are added or removed, so the params hold a digest of this list, recomputed each
    time Snakemake builds the DAG: an edited wav or caption line reruns this rule and, through its
    output, everything that reads the corpus; an untouched corpus reruns nothing."""
    input:
        corpus_paths,
    output:
        "results/manifests/corpus_{corpus}.tsv",
    wildcard_constraints:
        corpus=CORPORA,
    params:
        digest=corpus_digest,
        verify=config["ingest"]["verify"],
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    log:
        log_path("corpus_manifest_{corpus}"),
    benchmark:
        bench_path("corpus_manifest_{corpus}")
    conda:
        VGS_ENV
    script:
        "../../scripts/corpus_manifest.py"


rule ingest:
    """Validate the corpus and write manifests; bad entries are errors or counted skips."""
    input:
        corpus=flickr_root(),
        files="results/manifests/corpus_flickr8k.tsv",
    output:
        images="results/manifests/images.tsv",
        captions="results/manifests/captions.tsv",
        utterances="results/manifests/utterances.tsv",
        report="results/manifests/ingest_report.json",
    params:
        max_skip_fraction=config["ingest"]["max_skip_fraction"],
        plausibility=config["ingest"]["plausibility"],
        min_image_side=config["ingest"]["min_image_side"],
    threads: 4
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        log_path("ingest"),
    benchmark:
        bench_path("ingest")
    conda:
        VGS_ENV
    script:
        "../../scripts/ingest.py"
