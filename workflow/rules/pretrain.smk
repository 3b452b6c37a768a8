# pretrain (issue 12, item 3): MILAN's pretraining, then fine-tuning.  A second corpus (a generated one
# with its own seed -- other images, captions and voices -- or another Flickr8k + FACC root) goes
# through this workflow's own corpus, speech and vision rules, imported as a module whose paths all
# start with results/pretrain/ (PRETRAIN_PATHS); the caption system is trained on it there, then
# fine-tuned on the main corpus from those weights (caption_train mode `finetuned`).  Included only
# when caption.pretrain is set.
#   results/pretrain/resources/synthetic/flickr8k, results/pretrain/{manifests,speech,vision,logs,benchmarks}/...
#   results/pretrain/caption/{system}/trained/seed{seed}/model.pt     the pretrained model
#   results/pretrain/caption/{system}/trained/metrics.json            its test row on the second corpus
#   results/caption/{system}/finetuned/seed{seed}/model.pt            fine-tuned on the main corpus
#   results/caption/pretrain.{json,md}                                fine-tuned vs from scratch (not in `all`)


module pretrain_corpus:
    snakefile:
        "../../Snakefile"
    config:
        pretrain_config()
    replace_prefix:
        PRETRAIN_PATHS


use rule synthetic_corpus, corpus_manifest, ingest, speech_fbank, speech_fbank_merge, speech_ssl, vision_export_onnx, vision_regions, vision_regions_merge, vision_convmap, vision_convmap_merge, caption_train, caption_evaluate from pretrain_corpus as pretrain_*


rule caption_pretrain:
    """MILAN's pretraining: the system fine-tuned from its model pretrained on the second corpus beside
    the same system trained from scratch, both on the main corpus's test split."""
    input:
        caption_pretrain_metrics(),
    output:
        json="results/caption/pretrain.json",
        md=report("results/caption/pretrain.md", category="Caption models", caption="../report/caption_pretrain.rst"),
    params:
        pretrain=CAP["pretrain"],
        epochs=caption_system(CAP["pretrain"]["system"])["epochs"],
        ks=config["recall"]["ks"],
    log:
        log_path("caption_pretrain"),
    benchmark:
        bench_path("caption_pretrain")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        VGS_ENV
    script:
        "../../scripts/caption_pretrain.py"
