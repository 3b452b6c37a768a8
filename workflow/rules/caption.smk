# caption stage (issue 9): whole spoken captions and whole images in one space, no word segmentation —
# the dual encoders of Harwath & Glass (2017), the matchmap paper and MILAN (vgs/caption/).
#   results/caption/{system}/{mode}/seed{seed}/model.pt    mode: trained | untrained ("(R)") | bs<N>, len<S> (sweeps)
#   results/caption/{system}/{mode}/metrics.json          one row of the recall table (all seeds)
#   results/caption/{system}/training.png                 loss and dev recall by epoch
#   results/caption/{system}/towers.pt                    TorchScript towers (vgs/caption/__init__.py)
#   results/caption/{batch,length}_sweep.{json,md}        recall vs batch size / fixed length (not in the default target)
#   results/caption/pretrain.{json,md}                    fine-tuned from pretraining vs from scratch (pretrain.smk)
#   results/caption/benchmark.{json,md}                   speed per system, matchmap scoring vs einsum


wildcard_constraints:
    system="|".join(CAP["systems"]) or "^$",


rule caption_train:
    """One system, one seed: train on the train split, best epoch on dev, checkpoint every epoch."""
    wildcard_constraints:
        mode=CAPTION_MODES,
        seed=r"\d+",
    input:
        feats=speech_features("speech"),  # speech.features: log-mels or ssl frames
        images=lambda wc: caption_image_h5(wc.system),
        utterances="results/manifests/utterances.tsv",
        init=caption_init,  # mode finetuned: the pretrained model
    output:
        model="results/caption/{system}/{mode}/seed{seed}/model.pt",
        history="results/caption/{system}/{mode}/seed{seed}/train.json",
    params:
        # not an output: Snakemake would delete it when a run is killed, and a rerun resumes from it
        checkpoint=module_path("results/caption/{system}/{mode}/seed{seed}/checkpoint.pt"),  # under results/pretrain/ in the module
        train=lambda wc: caption_train_params(wc.system, wc.mode, wc.seed),
        mem_mb=CAP["eval"]["mem_mb"],
    log:
        log_path("caption_train_{system}_{mode}_seed{seed}"),
    benchmark:
        bench_path("caption_train_{system}_{mode}_seed{seed}")
    threads: CAP["threads"]
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=CAP["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_train.py"


rule caption_evaluate:
    """A row of the recall table: test ranks of every seed, P@1/5/10 on 100 image/caption pairs."""
    wildcard_constraints:
        mode=CAPTION_MODES,
    input:
        models=lambda wc: caption_models(wc.system, wc.mode),
        feats=speech_features("speech"),  # speech.features: log-mels or ssl frames
        images=lambda wc: caption_image_h5(wc.system),
        utterances="results/manifests/utterances.tsv",
    output:
        metrics="results/caption/{system}/{mode}/metrics.json",
    params:
        eval=CAP["eval"],
        paper=lambda wc: caption_system(wc.system)["paper"],
    log:
        log_path("caption_evaluate_{system}_{mode}"),
    benchmark:
        bench_path("caption_evaluate_{system}_{mode}")
    threads: CAP["threads"]
    resources:
        mem_mb=4000,
        runtime=20,
        gpu=CAP["gpus"],
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_evaluate.py"


rule caption_towers:
    """The trained towers of a system's first seed as TorchScript, for later stages (interface:
    vgs/caption/__init__.py)."""
    input:
        model=lambda wc: f"results/caption/{wc.system}/trained/seed{CAP['seeds'][0]}/model.pt",
    output:
        towers="results/caption/{system}/towers.pt",
    log:
        log_path("caption_towers_{system}"),
    benchmark:
        bench_path("caption_towers_{system}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_towers.py"


rule caption_figure:
    input:
        lambda wc: caption_histories(wc.system),
    output:
        report("results/caption/{system}/training.png", category="Caption models", caption="../report/caption_training.rst"),
    log:
        log_path("caption_figure_{system}"),
    benchmark:
        bench_path("caption_figure_{system}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_figure.py"


rule caption_sweep:
    """Recall vs one training key of one system (MILAN's ablations): batch size (caption.sweep) or
    the fixed length captions are cropped and padded to (caption.length_sweep)."""
    wildcard_constraints:
        sweep="|".join(CAPTION_SWEEPS),
    input:
        caption_sweep_metrics,
    output:
        json="results/caption/{sweep}_sweep.json",
        md=report("results/caption/{sweep}_sweep.md", category="Caption models", caption="../report/caption_sweep.rst"),
    params:
        sweep=lambda wc: caption_sweep_params(wc.sweep),
        ks=config["recall"]["ks"],
    log:
        log_path("caption_sweep_{sweep}"),
    benchmark:
        bench_path("caption_sweep_{sweep}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_sweep.py"


rule caption_benchmark:
    """Speed of every default system (from its row) and matchmap scoring vs a bare einsum."""
    input:
        [f"results/caption/{s}/trained/metrics.json" for s in CAP["systems"]],
    output:
        json="results/caption/benchmark.json",
        md=report("results/caption/benchmark.md", category="Caption models", caption="../report/caption_benchmark.rst"),
    params:
        bench=CAP["benchmark"],
        mem_mb=CAP["eval"]["mem_mb"],
    log:
        log_path("caption_benchmark"),
    benchmark:
        bench_path("caption_benchmark")
    threads: CAP["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_benchmark.py"


rule caption_all:
    """Everything of this stage, sweep and benchmark included."""
    input:
        "results/flickr8k_recall.json",
        expand("results/caption/{system}/training.png", system=CAP["systems"]),
        "results/caption/batch_sweep.md",
        "results/caption/length_sweep.md",
        ["results/caption/pretrain.md"] if CAP["pretrain"] else [],
        "results/caption/benchmark.md",
