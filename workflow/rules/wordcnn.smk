# wordcnn stage (issue 6B): word-spectrogram nets pretrained as isolated-word classifiers on the
# word corpus (paper Sec. 2.2/3, Table 2), then the 1024-d word vectors of every caption word.
#   results/wordcnn/{arch}/model.pt         arch in cnn | dnn2 | dnn3
#   results/wordcnn/table2.{json,md}        Table 2 analogue + unseen caption vocabulary
#   results/speech/{aligner}/word_vectors.h5


rule wordcnn_train:
    input:
        windows="results/wordcorpus/windows.h5",
    output:
        model="results/wordcnn/{arch}/model.pt",
        metrics="results/wordcnn/{arch}/metrics.json",
    wildcard_constraints:
        arch="cnn|dnn2|dnn3",
    params:
        train=lambda w: wordcnn_train_params(w.arch),
    log:
        log_path("wordcnn_train_{arch}"),
    benchmark:
        bench_path("wordcnn_train_{arch}")
    threads: config["wordcnn"]["threads"]
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=config["wordcnn"]["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/wordcnn_train.py"


rule wordcnn_table2:
    input:
        metrics=expand("results/wordcnn/{arch}/metrics.json", arch=config["wordcnn"]["table2_archs"]),
        model=f"results/wordcnn/{config['wordcnn']['arch']}/model.pt",
        # caption vocabulary for the "unseen in pretraining" share: the main aligner's words
        captions=f"results/speech/{config['speech']['aligner']}/caption_windows.h5",
    output:
        json="results/wordcnn/table2.json",
        md="results/wordcnn/table2.md",
    log:
        log_path("wordcnn_table2"),
    benchmark:
        bench_path("wordcnn_table2")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/wordcnn_table2.py"


rule wordcnn_vectors:
    input:
        model=f"results/wordcnn/{config['wordcnn']['arch']}/model.pt",
        windows="results/speech/{aligner}/caption_windows.h5",
    output:
        vectors="results/speech/{aligner}/word_vectors.h5",
        report="results/speech/{aligner}/word_vectors.json",
    wildcard_constraints:
        aligner="[^/]+",
    params:
        batch_size=config["wordcnn"]["vector_batch_size"],
    log:
        log_path("wordcnn_vectors_{aligner}"),
    benchmark:
        bench_path("wordcnn_vectors_{aligner}")
    threads: config["wordcnn"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=config["wordcnn"]["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/wordcnn_vectors.py"


rule wordcnn_figures:
    input:
        model="results/wordcnn/cnn/model.pt",
        windows="results/wordcorpus/windows.h5",
    output:
        filters=report("results/figures/conv1_filters.png", category="Figures", caption="../report/conv1_filters.rst"),
        moved=report("results/figures/conv1_moved.png", category="Figures", caption="../report/conv1_moved.rst"),
        window=report("results/figures/word_window.png", category="Figures", caption="../report/word_window.rst"),
    params:
        word=config["wordcnn"]["figure_word"],
    log:
        log_path("wordcnn_figures"),
    benchmark:
        bench_path("wordcnn_figures")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/wordcnn_figures.py"
