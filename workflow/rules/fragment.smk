# fragment stage (issue 4): the embedding/alignment model of Harwath & Glass (2015, sec. 2.3),
# one trained model per Table 1 row ({system}) and seed (fragment.seeds), test-split recall (one row per
# system, a run per seed), grounding, figures, benchmark.
#   speech: word-CNN vectors of words cut by config speech.aligner (the paper's "Spectrogram CNN")
#   oracle: the same with ground-truth word times (synthetic corpus only)
#   text:   ground-truth transcript words through PPMI+SVD word vectors ("Text + word vec")
#   asr_<lm>, asr_<lm>_trained: the same on ASR hypotheses (the asr stage's cascade rows), with the
#           text row's model or one trained on hypotheses


rule fragment_textvec:
    """PPMI+SVD word vectors fit on one transcript file's train split, emitted for another's rows."""
    wildcard_constraints:
        system=FRAGMENT_TEXT_SYSTEMS,
    input:
        unpack(lambda w: fragment_transcripts(w.system)),
    output:
        "results/fragment/{system}/word_vectors.h5",
    params:
        textvec=FRAG["textvec"],
    log:
        log_path("fragment_textvec_{system}"),
    benchmark:
        bench_path("fragment_textvec_{system}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        VGS_ENV
    script:
        "../../scripts/fragment_textvec.py"


rule fragment_train:
    """One model per (system, seed): each seed its own job and checkpoint dir (fragment.seeds)."""
    wildcard_constraints:
        system=FRAGMENT_TRAINED_SYSTEMS,
        seed=r"\d+",
    input:
        regions="results/vision/regions.h5",
        words=lambda wc: fragment_word_vectors_for(wc.system),
        utterances="results/manifests/utterances.tsv",
    output:
        model="results/fragment/{system}/seed{seed}/model.pt",
        history="results/fragment/{system}/seed{seed}/train.json",
    params:
        # the per-epoch checkpoint is not an output: Snakemake would delete it when a run is
        # killed, and it is what a rerun resumes from (it is ignored if config or data changed)
        checkpoint="results/fragment/{system}/seed{seed}/checkpoint.pt",
        train=lambda wc: fragment_train_params(wc.seed),
        eval_mem_mb=FRAG["eval"]["eval_mem_mb"],
    log:
        log_path("fragment_train_{system}_seed{seed}"),
    benchmark:
        bench_path("fragment_train_{system}_seed{seed}")
    threads: 1  # one intra-op thread: bitwise run-to-run identity (README, "Run-to-run identity"); jobs run side by side
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=FRAG["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/fragment_train.py"


rule fragment_evaluate:
    """Test ranks of every seed's model → the system's row of the recall table (one run per seed)."""
    wildcard_constraints:
        system=f"speech|oracle|{FRAGMENT_TEXT_SYSTEMS}",
    input:
        models=lambda wc: fragment_models(wc.system),
        regions="results/vision/regions.h5",
        words=lambda wc: fragment_word_vectors_for(wc.system),
        utterances="results/manifests/utterances.tsv",
        truth=fragment_truth(),
    output:
        scores="results/fragment/{system}/scores_test.npz",
        metrics="results/fragment/{system}/metrics.json",
    params:
        eval=FRAG["eval"],
        boxes=fragment_boxes(),
    log:
        log_path("fragment_evaluate_{system}"),
    benchmark:
        bench_path("fragment_evaluate_{system}")
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
        gpu=FRAG["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/fragment_evaluate.py"


rule fragment_figures:
    input:
        model=fragment_models(FRAG["figure"]["system"])[0],  # the first seed's
        regions="results/vision/regions.h5",
        words=fragment_word_vectors_for(FRAG["figure"]["system"]),
        utterances="results/manifests/utterances.tsv",
        images="results/manifests/images.tsv",
    output:
        report("results/figures/alignments.png", category="Alignments", caption="../report/alignments.rst"),
    params:
        figure=FRAG["figure"],
    log:
        log_path("fragment_figures"),
    benchmark:
        bench_path("fragment_figures")
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        VGS_ENV
    script:
        "../../scripts/fragment_figures.py"


rule fragment_benchmark:
    output:
        report("results/fragment/benchmark.json", category="Retrieval", caption="../report/benchmark.rst"),
    params:
        bench=FRAG["benchmark"],
        embed_dim=FRAG["embed_dim"],
        eval_mem_mb=FRAG["eval"]["eval_mem_mb"],
    log:
        log_path("fragment_benchmark"),
    benchmark:
        bench_path("fragment_benchmark")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        VGS_ENV
    script:
        "../../scripts/fragment_benchmark.py"


rule fragment_all:
    input:
        "results/flickr8k_recall.json",
        "results/flickr8k_recall.md",
        "results/figures/alignments.png",
