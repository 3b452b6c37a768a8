# speech stage (issue 6A): forced alignment, log-mel features, 1-second word windows.
#   results/speech/{aligner}/textgrids/<utt>.TextGrid      aligner in pocketsphinx | mfa | oracle
#   results/speech/{aligner}/word_segments.tsv             utt_id, index, word, start, end (s)
#   results/speech/{aligner}/alignment_report.json
#   results/speech/fbank.h5 (+ fbank.ark/.scp, fbank_report.json)
#   results/speech/ssl.h5 (+ ssl_report.json)                 speech.features: ssl (wav2vec 2.0 / HuBERT)
#   results/speech/{aligner}/caption_windows.h5 (+ windows_report.json)
#   results/wordcorpus/{aligner}/word_segments.tsv (+ alignment_report.json, textgrids/)  word_corpus.times: aligner
#   results/wordcorpus/fbank.h5, results/wordcorpus/windows.h5 (+ reports)
# Parameters reach rules only through params, so e.g. a speech.windows change reruns the window
# rules alone, a speech.fbank change the feature rules and the windows after them.


rule speech_align:
    """Forced alignment of one shard of the spoken captions to their transcripts."""
    input:
        utterances="results/manifests/utterances.tsv",
        truth=speech_truth,
    output:
        textgrids=temp(directory(shard_path("speech_align", "{aligner}/textgrids"))),
        segments=temp(shard_path("speech_align", "{aligner}/word_segments.tsv")),
        report=temp(shard_path("speech_align", "{aligner}/alignment_report.json")),
    wildcard_constraints:
        aligner=SPEECH_ALIGNERS,
    params:
        settings=lambda w: speech_align_params(w.aligner),
    threads: config["speech"]["align_threads"]
    resources:
        mem_mb=lambda w, threads: 500 + 300 * threads,
        runtime=120,
    log:
        log_path("speech_align_{aligner}_{scatteritem}"),
    benchmark:
        bench_path("speech_align_{aligner}_{scatteritem}")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_align.py"


rule speech_align_merge:
    """The shards' alignments as one set of TextGrids, word segments and report."""
    input:
        textgrids=shard_paths("speech_align", "{aligner}/textgrids"),
        segments=shard_paths("speech_align", "{aligner}/word_segments.tsv"),
        reports=shard_paths("speech_align", "{aligner}/alignment_report.json"),
        utterances="results/manifests/utterances.tsv",
        truth=speech_truth,
    output:
        textgrids=directory("results/speech/{aligner}/textgrids"),
        segments="results/speech/{aligner}/word_segments.tsv",
        report="results/speech/{aligner}/alignment_report.json",
    wildcard_constraints:
        aligner=SPEECH_ALIGNERS,
    params:
        settings=lambda w: speech_align_params(w.aligner),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    log:
        log_path("speech_align_merge_{aligner}"),
    benchmark:
        bench_path("speech_align_merge_{aligner}")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_align_merge.py"


rule speech_fbank:
    """40-d log-mel features of one shard of the captions, normalised per utterance."""
    input:
        utterances="results/manifests/utterances.tsv",
    output:
        h5=temp(shard_path("speech_fbank", "fbank.h5")),
        report=temp(shard_path("speech_fbank", "fbank_report.json")),
    params:
        fbank=speech_fbank_params(),
    threads: config["speech"]["fbank"]["threads"]
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        log_path("speech_fbank_{scatteritem}"),
    benchmark:
        bench_path("speech_fbank_{scatteritem}")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_fbank.py"


rule speech_fbank_merge:
    """The shards' features as one HDF5 file, a Kaldi ark/scp and the report."""
    input:
        h5=shard_paths("speech_fbank", "fbank.h5"),
        reports=shard_paths("speech_fbank", "fbank_report.json"),
    output:
        h5="results/speech/fbank.h5",
        ark="results/speech/fbank.ark",
        scp="results/speech/fbank.scp",
        report="results/speech/fbank_report.json",
    params:
        fbank=speech_fbank_params(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    log:
        log_path("speech_fbank_merge"),
    benchmark:
        bench_path("speech_fbank_merge")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_fbank_merge.py"


rule speech_ssl:
    """Self-supervised frame features of every caption: one layer of a wav2vec 2.0-family model."""
    input:
        utterances="results/manifests/utterances.tsv",
    output:
        h5="results/speech/ssl.h5",
        report="results/speech/ssl_report.json",
    params:
        ssl=speech_ssl_params(),
    threads: config["speech"]["ssl"]["threads"]
    resources:
        mem_mb=6000,
        runtime=240,
        gpu=config["speech"]["ssl"]["gpus"],
    log:
        log_path("speech_ssl"),
    benchmark:
        bench_path("speech_ssl")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_ssl.py"


rule wordcorpus_ssl:
    """Self-supervised features of the word corpus, same model and layer as the captions."""
    input:
        corpus=word_corpus_dir(),
        files="results/manifests/corpus_words.tsv",
    output:
        h5="results/wordcorpus/ssl.h5",
        report="results/wordcorpus/ssl_report.json",
    params:
        ssl=speech_ssl_params(),
    threads: config["speech"]["ssl"]["threads"]
    resources:
        mem_mb=6000,
        runtime=240,
        gpu=config["speech"]["ssl"]["gpus"],
    log:
        log_path("wordcorpus_ssl"),
    benchmark:
        bench_path("wordcorpus_ssl")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_wordcorpus_ssl.py"


rule speech_windows:
    """Every aligned caption word as a 1 s centred window of the frame features (speech.features)."""
    input:
        fbank=speech_features("speech"),
        segments="results/speech/{aligner}/word_segments.tsv",
    output:
        h5="results/speech/{aligner}/caption_windows.h5",
        report="results/speech/{aligner}/windows_report.json",
    wildcard_constraints:
        aligner=SPEECH_ALIGNERS,
    params:
        windows=config["speech"]["windows"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        log_path("speech_windows_{aligner}"),
    benchmark:
        bench_path("speech_windows_{aligner}")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_windows.py"


rule wordcorpus_fbank:
    """Features of the word corpus (WSJ's role), same settings as the captions."""
    input:
        corpus=word_corpus_dir(),
        files="results/manifests/corpus_words.tsv",
    output:
        h5="results/wordcorpus/fbank.h5",
        report="results/wordcorpus/fbank_report.json",
    params:
        fbank=speech_fbank_params(),
    threads: config["speech"]["fbank"]["threads"]
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        log_path("wordcorpus_fbank"),
    benchmark:
        bench_path("wordcorpus_fbank")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_wordcorpus_fbank.py"


rule wordcorpus_align:
    """The word corpus aligned by the caption aligner (word_corpus.times: aligner), same settings and report."""
    input:
        corpus=word_corpus_dir(),
        files="results/manifests/corpus_words.tsv",  # its files, the CTM included (corpus_manifest)
    output:
        textgrids=directory("results/wordcorpus/{aligner}/textgrids"),
        segments="results/wordcorpus/{aligner}/word_segments.tsv",
        report="results/wordcorpus/{aligner}/alignment_report.json",
    wildcard_constraints:
        aligner=SPEECH_ALIGNERS,
    params:
        settings=lambda w: speech_align_params(w.aligner),
        ctm=lambda w: word_corpus_ctm(),
    threads: config["speech"]["align_threads"]
    resources:
        mem_mb=lambda w, threads: 500 + 300 * threads,
        runtime=60,
    log:
        log_path("wordcorpus_align_{aligner}"),
    benchmark:
        bench_path("wordcorpus_align_{aligner}")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_wordcorpus_align.py"


rule wordcorpus_windows:
    """Every word token of the word corpus as a 1 s window of the frame features (speech.features),
    with its speaker, cut at the CTM's times or the caption aligner's (word_corpus.times)."""
    input:
        fbank=speech_features("wordcorpus"),
        corpus=word_corpus_dir(),
        files="results/manifests/corpus_words.tsv",
        segments=wordcorpus_segments(as_input=True),
    output:
        h5="results/wordcorpus/windows.h5",
        report="results/wordcorpus/windows_report.json",
    params:
        windows=config["speech"]["windows"],
        times=config["word_corpus"]["times"],
        segments=lambda w: wordcorpus_segments(),  # also the synthetic CTM inside its corpus dir
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        log_path("wordcorpus_windows"),
    benchmark:
        bench_path("wordcorpus_windows")
    conda:
        VGS_ENV
    script:
        "../../scripts/speech_wordcorpus_windows.py"
