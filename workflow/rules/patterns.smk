# patterns stage (issue 10): grounding and audio-visual pattern discovery of Harwath & Glass (2017)
# sec. 4-5 on a trained whole-caption system (vgs/patterns/).
#   results/patterns/vad.h5                            speech/silence per 10 ms frame (silero-vad or energy)
#   results/patterns/vad_report.json                   the VADs' agreement with aligned and true non-word time
#   results/patterns/{system}/groundings.h5            accepted groundings with their box and segment embeddings
#   results/patterns/{system}/grounding_report.json    counts, captions without groundings, throughput, memory
#   results/patterns/{system}/clusters.h5              k-means (and random) clusters of both modalities per k
#   results/patterns/{system}/tables.{json,md}         Table 3 and 4 analogues, visual purity, random baselines
#   results/patterns/{system}/compare.{json,md}        pool vs exact segments, roi vs crop boxes, on a sample
#   results/patterns/{system}/fig{1,2,3,4}.png         the paper's four figures


rule patterns_vad:
    """Voice activity of every caption of the split (silero-vad, or the energy VAD)."""
    input:
        utterances="results/manifests/utterances.tsv",
        fbank="results/speech/fbank.h5",
    output:
        h5="results/patterns/vad.h5",
    params:
        vad=patterns_params("vad"),
    threads: PAT["threads"]
    resources:
        mem_mb=3000,
        runtime=20,
    log:
        log_path("patterns_vad"),
    benchmark:
        bench_path("patterns_vad")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_vad.py"


rule patterns_vad_report:
    """Both VADs' agreement with the aligned (and true) non-word time."""
    input:
        vad="results/patterns/vad.h5",
        words=patterns_word_inputs(),
    output:
        report=report("results/patterns/vad_report.json", category="Patterns", caption="../report/patterns_vad.rst"),
    params:
        words=patterns_words(),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        log_path("patterns_vad_report"),
    benchmark:
        bench_path("patterns_vad_report")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_vad_report.py"


rule patterns_ground:
    """Every box x segment pair of every caption scored (one GEMM per image), groundings selected."""
    input:
        towers=patterns_towers,
        convmap="results/vision/convmap.h5",
        fbank="results/speech/fbank.h5",
        vad="results/patterns/vad.h5",
        utterances="results/manifests/utterances.tsv",
        images="results/manifests/images.tsv",
        onnx=lambda wc: vision_onnx() if PAT["boxes"]["embed"] == "crop" else [],
    output:
        h5="results/patterns/{system}/groundings.h5",
        report=report("results/patterns/{system}/grounding_report.json", category="Patterns",
                      caption="../report/patterns_grounding.rst"),
    params:
        patterns=patterns_params("ground"),
    threads: PAT["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=PAT["gpus"],
    log:
        log_path("patterns_ground_{system}"),
    benchmark:
        bench_path("patterns_ground_{system}")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_ground.py"


rule patterns_cluster:
    """k-means of the grounded segment and box embeddings for each k, variances, eq. 2 affinities,
    and a random clustering of the same sizes."""
    input:
        "results/patterns/{system}/groundings.h5",
    output:
        "results/patterns/{system}/clusters.h5",
    params:
        cluster=patterns_params("cluster"),
    threads: PAT["threads"]
    resources:
        mem_mb=3000,
        runtime=20,
    log:
        log_path("patterns_cluster_{system}"),
    benchmark:
        bench_path("patterns_cluster_{system}")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_cluster.py"


rule patterns_evaluate:
    """Table 3 and 4 analogues from aligner (and ground-truth) labels, visual purity, random baselines."""
    input:
        groundings="results/patterns/{system}/groundings.h5",
        clusters="results/patterns/{system}/clusters.h5",
        words=patterns_word_inputs(),
    output:
        json="results/patterns/{system}/tables.json",
        md=report("results/patterns/{system}/tables.md", category="Patterns", caption="../report/patterns_tables.rst"),
    params:
        patterns=patterns_params("evaluate"),
        words=patterns_words(),
        boxes=patterns_boxes_tsv(),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    log:
        log_path("patterns_evaluate_{system}"),
    benchmark:
        bench_path("patterns_evaluate_{system}")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_evaluate.py"


rule patterns_compare:
    """Fast vs exact embeddings on a seeded sample: pool vs exact segments, roi vs crop boxes."""
    input:
        towers=patterns_towers,
        convmap="results/vision/convmap.h5",
        fbank="results/speech/fbank.h5",
        vad="results/patterns/vad.h5",
        utterances="results/manifests/utterances.tsv",
        images="results/manifests/images.tsv",
        onnx=vision_onnx(),
    output:
        json="results/patterns/{system}/compare.json",
        md=report("results/patterns/{system}/compare.md", category="Patterns", caption="../report/patterns_compare.rst"),
    params:
        patterns=patterns_params("compare"),
    threads: PAT["threads"]
    resources:
        mem_mb=3000,
        runtime=20,
        gpu=PAT["gpus"],
    log:
        log_path("patterns_compare_{system}"),
    benchmark:
        bench_path("patterns_compare_{system}")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_compare.py"


rule patterns_figures:
    """The paper's Figs. 1-4 (grounding, purity vs variance, image clusters, t-SNE), random beside."""
    input:
        groundings="results/patterns/{system}/groundings.h5",
        clusters="results/patterns/{system}/clusters.h5",
        fbank="results/speech/fbank.h5",
        words=patterns_words()[config["speech"]["aligner"]],
    output:
        fig1=report("results/patterns/{system}/fig1.png", category="Patterns", caption="../report/patterns_fig1.rst"),
        fig2=report("results/patterns/{system}/fig2.png", category="Patterns", caption="../report/patterns_fig2.rst"),
        fig3=report("results/patterns/{system}/fig3.png", category="Patterns", caption="../report/patterns_fig3.rst"),
        fig4=report("results/patterns/{system}/fig4.png", category="Patterns", caption="../report/patterns_fig4.rst"),
    params:
        patterns=patterns_params("figures"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    log:
        log_path("patterns_figures_{system}"),
    benchmark:
        bench_path("patterns_figures_{system}")
    conda:
        VGS_ENV
    script:
        "../../scripts/patterns_figures.py"
