# fragment stage (issue 4): the embedding/alignment model of Harwath & Glass (2015, sec. 2.3),
# one trained model per Table 1 row ({system}), test-split recall, grounding, figures, benchmark.
#   speech: word-CNN vectors of words cut by config speech.aligner (the paper's "Spectrogram CNN")
#   oracle: the same with ground-truth word times (synthetic corpus only)
#   text:   ground-truth transcript words through PPMI+SVD word vectors ("Text + word vec")
FRAG = config["fragment"]


def fragment_systems():
    systems = list(FRAG["systems"])
    if config["corpus"] != "synthetic":
        systems = [s for s in systems if s != "oracle"]  # no ground-truth word times on real data
    return systems


def fragment_word_vectors_for(system):
    if system == "text":
        return "results/fragment/text/word_vectors.h5"
    aligner = "oracle" if system == "oracle" else config.get("speech", {}).get("aligner", "pocketsphinx")
    return f"results/speech/{aligner}/word_vectors.h5"


def fragment_truth():
    """The synthetic corpus dir (an output of its own rule; boxes.tsv is inside it), or nothing."""
    return [flickr_root()] if config["corpus"] == "synthetic" else []


def fragment_boxes():
    return f"{flickr_root()}/ground_truth/boxes.tsv" if config["corpus"] == "synthetic" else None


rule fragment_textvec:
    input:
        utterances="results/manifests/utterances.tsv",
    output:
        "results/fragment/text/word_vectors.h5",
    params:
        textvec=FRAG["textvec"],
    log:
        log_path("fragment_textvec"),
    benchmark:
        bench_path("fragment_textvec")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/fragment_textvec.py"


rule fragment_train:
    wildcard_constraints:
        system="speech|oracle|text",
    input:
        regions="results/vision/regions.h5",
        words=lambda wc: fragment_word_vectors_for(wc.system),
        utterances="results/manifests/utterances.tsv",
    output:
        model="results/fragment/{system}/model.pt",
        history="results/fragment/{system}/train.json",
    params:
        # the per-epoch checkpoint is not an output: Snakemake would delete it when a run is
        # killed, and it is what a rerun resumes from (it is ignored if config or data changed)
        checkpoint="results/fragment/{system}/checkpoint.pt",
        train={k: FRAG[k] for k in ("embed_dim", "lr", "momentum", "weight_decay", "batch_images",
                                    "epochs", "margin", "standardize_images", "seed")},
        eval_mem_mb=FRAG["eval"]["eval_mem_mb"],
    log:
        log_path("fragment_train_{system}"),
    benchmark:
        bench_path("fragment_train_{system}")
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=FRAG["gpus"],
    script:
        "../../scripts/fragment_train.py"


rule fragment_evaluate:
    wildcard_constraints:
        system="speech|oracle|text",
    input:
        model="results/fragment/{system}/model.pt",
        regions="results/vision/regions.h5",
        words=lambda wc: fragment_word_vectors_for(wc.system),
        utterances="results/manifests/utterances.tsv",
        truth=fragment_truth(),
    output:
        scores="results/fragment/{system}/scores_test.npy",
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
    script:
        "../../scripts/fragment_evaluate.py"


rule fragment_recall:
    input:
        expand("results/fragment/{system}/metrics.json", system=fragment_systems()),
    output:
        json=report("results/flickr8k_recall.json", category="Retrieval", caption="../report/recall_json.rst"),
        md="results/flickr8k_recall.md",
        html=report("results/fragment/recall_table.html", category="Retrieval", caption="../report/recall.rst"),
    params:
        # gpus is a resource, not a result: left out so changing it reruns nothing
        fragment={k: v for k, v in FRAG.items() if k != "gpus"},
    log:
        log_path("fragment_recall"),
    benchmark:
        bench_path("fragment_recall")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../../scripts/fragment_recall.py"


rule fragment_figures:
    input:
        model=f"results/fragment/{FRAG['figure']['system']}/model.pt",
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
    script:
        "../../scripts/fragment_benchmark.py"


rule fragment_all:
    input:
        "results/flickr8k_recall.json",
        "results/flickr8k_recall.md",
        "results/figures/alignments.png",
