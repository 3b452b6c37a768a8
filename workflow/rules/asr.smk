# asr stage (issue 12): the ASR → text cascade of MILAN (2021, Table 5).  pocketsphinx transcribes
# the spoken captions with its bundled general LM or a trigram of the training captions; the
# hypotheses go through the fragment stage's text row (rule fragment_textvec reads them as its
# transcripts), and each cascade row gets the recogniser's WER beside it.
#   results/asr/caption_lm/{lm.arpa,words.dict,report.json}   the caption LM (train split only)
#   results/asr/{lm}/hypotheses.tsv                             utt_id, split, transcript (manifest order)
#   results/asr/{lm}/wer.json                                   WER per split, empty hypotheses, × real time
#   results/asr/rows/{system}.json                              the row of the recall table


rule asr_caption_lm:
    """Trigram LM and dictionary of the train split's transcripts (never dev or test)."""
    input:
        utterances="results/manifests/utterances.tsv",
    output:
        lm="results/asr/caption_lm/lm.arpa",
        dict="results/asr/caption_lm/words.dict",
        report="results/asr/caption_lm/report.json",
    params:
        lm=ASR["caption_lm"],
    log:
        log_path("asr_caption_lm"),
    benchmark:
        bench_path("asr_caption_lm")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/asr_caption_lm.py"


rule asr_decode:
    """Every caption of the decoded splits through pocketsphinx with one LM; WER per split."""
    input:
        unpack(asr_decode_inputs),
    output:
        hyps="results/asr/{lm}/hypotheses.tsv",
        wer="results/asr/{lm}/wer.json",
    wildcard_constraints:
        lm=ASR_LMS,
    params:
        decoder=canonical(ASR["decoder"]),
        splits=asr_splits(),
    threads: ASR["threads"]
    resources:
        mem_mb=lambda w, threads: 500 + 400 * threads,
        runtime=240,
    log:
        log_path("asr_decode_{lm}"),
    benchmark:
        bench_path("asr_decode_{lm}")
    conda:
        VGS_ENV
    script:
        "../../scripts/asr_decode.py"


rule asr_row:
    """The text row's evaluation on ASR hypotheses, labelled, with the WER beside it."""
    input:
        metrics="results/fragment/{system}/metrics.json",
        wer=lambda w: f"results/asr/{asr_lm_of(w.system)}/wer.json",
    output:
        "results/asr/rows/{system}.json",
    wildcard_constraints:
        system=ASR_SYSTEMS,
    params:
        lm=lambda w: asr_lm_of(w.system),
        trained_on_asr=lambda w: w.system.endswith("_trained"),
    log:
        log_path("asr_row_{system}"),
    benchmark:
        bench_path("asr_row_{system}")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/asr_row.py"
