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
    """The word-aligned corpus for word-CNN pretraining (WSJ's role), as a Kaldi data dir + CTM."""
    input:
        "resources/synthetic/flickr8k",
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


rule ingest:
    """Validate the corpus and write manifests; bad entries are errors or counted skips."""
    input:
        flickr_root(),
    output:
        images="results/manifests/images.tsv",
        captions="results/manifests/captions.tsv",
        utterances="results/manifests/utterances.tsv",
        report="results/manifests/ingest_report.json",
    params:
        max_skip_fraction=config["ingest"]["max_skip_fraction"],
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
