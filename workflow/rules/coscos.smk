# coscos stage (issue 11): cross-situational word learning of Synnaeve et al. (2014) — spoken
# content-word tokens × image fragments, two ReLU towers into 200-d, the coscos² loss.
#   results/coscos/{system}/tokens.tsv (+ tokens_report.json)  system: speech (speech.aligner) | oracle
#   results/coscos/{system}/seed{seed}/model.pt, history.json   one training job per seed
#   results/coscos/{system}/ranks.json                          test ranks, trained net and random projection
#   results/coscos/ranks.{json,md,html}                         the paper's Tables 1 and 2
#   results/figures/coscos_curves.png                           the paper's Fig. 1 (right)


rule coscos_tokens:
    """Content words of every aligned caption (stop list, at least min_train_count in training)."""
    wildcard_constraints:
        system="speech|oracle",
    input:
        utterances="results/manifests/utterances.tsv",
        segments=lambda wc: coscos_segments(wc.system),
        fbank="results/speech/fbank.h5",
    output:
        tokens="results/coscos/{system}/tokens.tsv",
        report="results/coscos/{system}/tokens_report.json",
    params:
        tokens={k: COSCOS[k] for k in ("frames", "min_train_count", "stop_words")},
    log:
        log_path("coscos_tokens_{system}"),
    benchmark:
        bench_path("coscos_tokens_{system}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        VGS_ENV
    script:
        "../../scripts/coscos_tokens.py"


rule coscos_train:
    """One model per (system, seed): Adadelta on same/different pairs, per-epoch checkpoint, best epoch on dev."""
    wildcard_constraints:
        system="speech|oracle",
        seed=r"\d+",
    input:
        tokens="results/coscos/{system}/tokens.tsv",
        fbank="results/speech/fbank.h5",
        regions="results/vision/regions.h5",
        utterances="results/manifests/utterances.tsv",
    output:
        model="results/coscos/{system}/seed{seed}/model.pt",
        history="results/coscos/{system}/seed{seed}/history.json",
    params:
        # not an output: Snakemake would delete it when a run is killed, and a rerun resumes from it
        checkpoint="results/coscos/{system}/seed{seed}/checkpoint.pt",
        train=lambda wc: coscos_train_params(wc.seed),
    log:
        log_path("coscos_train_{system}_seed{seed}"),
    benchmark:
        bench_path("coscos_train_{system}_seed{seed}")
    threads: COSCOS["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=COSCOS["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/coscos_train.py"


rule coscos_evaluate:
    """Test ranks of the four tasks for every seed's net and its untrained twin (random projection)."""
    wildcard_constraints:
        system="speech|oracle",
    input:
        models=lambda wc: coscos_models(wc.system),
        tokens="results/coscos/{system}/tokens.tsv",
        fbank="results/speech/fbank.h5",
        regions="results/vision/regions.h5",
        utterances="results/manifests/utterances.tsv",
    output:
        "results/coscos/{system}/ranks.json",
    params:
        frames=COSCOS["frames"],
        eval=COSCOS["eval"],
    log:
        log_path("coscos_evaluate_{system}"),
    benchmark:
        bench_path("coscos_evaluate_{system}")
    threads: COSCOS["threads"]
    resources:
        mem_mb=2000,
        runtime=20,
        gpu=COSCOS["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/coscos_evaluate.py"


rule coscos_tables:
    """The paper's Tables 1 and 2: every system, model beside random projection, published numbers."""
    input:
        expand("results/coscos/{system}/ranks.json", system=coscos_systems()),
    output:
        json=report("results/coscos/ranks.json", category="Cross-situational learning", caption="../report/coscos_ranks.rst"),
        md="results/coscos/ranks.md",
        html=report("results/coscos/ranks.html", category="Cross-situational learning", caption="../report/coscos_ranks.rst"),
    params:
        ks=COSCOS["eval"]["ks"],
    log:
        log_path("coscos_tables"),
    benchmark:
        bench_path("coscos_tables")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        VGS_ENV
    script:
        "../../scripts/coscos_tables.py"


rule coscos_figure:
    """Learning curves: same/different cosine on train and dev by epoch (paper Fig. 1 right)."""
    input:
        [p for paths in coscos_histories().values() for p in paths],
    output:
        report("results/figures/coscos_curves.png", category="Cross-situational learning", caption="../report/coscos_curves.rst"),
    params:
        histories=coscos_histories(),
    log:
        log_path("coscos_figure"),
    benchmark:
        bench_path("coscos_figure")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        VGS_ENV
    script:
        "../../scripts/coscos_figure.py"
