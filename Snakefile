# vgs: visually grounded speech (Harwath & Glass 2015 and variants) as a Snakemake pipeline.
#   snakemake --cores 16 results/flickr8k_recall.json
import os

from snakemake.utils import min_version, validate

min_version("9.0")

# Defaults beside this file; --configfile FILE overrides any subset of keys.
configfile: os.path.join(workflow.basedir, "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")
if config["synthetic"]["preset"] not in config["synthetic"]["presets"]:  # a map, so not a schema enum
    raise ValueError(f"config synthetic.preset: {config['synthetic']['preset']!r} is not one of the "
                     f"presets {sorted(config['synthetic']['presets'])}")


# Shard jobs per heavy per-item stage (config shards.<stage>; see common.smk "sharding").
scattergather:
    **config["shards"],


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/vision.smk"
include: "workflow/rules/speech.smk"
include: "workflow/rules/wordcnn.smk"
include: "workflow/rules/fragment.smk"
include: "workflow/rules/caption.smk"
if config["caption"]["pretrain"]:
    include: "workflow/rules/pretrain.smk"
include: "workflow/rules/coscos.smk"
include: "workflow/rules/asr.smk"
include: "workflow/rules/recall.smk"
include: "workflow/rules/patterns.smk"


rule all:
    """The main job: recall table (Table 1), Table 2, alignment/proposal reports, coscos tables and figures."""
    default_target: True
    input:
        "results/flickr8k_recall.json",
        "results/flickr8k_recall.md",
        "results/wordcnn/table2.md",
        f"results/speech/{config['speech']['aligner']}/alignment_report.json",
        wordcorpus_segments(as_input=True),  # the word corpus's alignment (word_corpus.times: aligner)
        "results/figures/alignments.png",
        "results/figures/regions.png",
        "results/figures/conv1_filters.png",
        "results/figures/conv1_moved.png",
        "results/figures/word_window.png",
        expand("results/caption/{system}/training.png", system=config["caption"]["systems"]),
        expand("results/caption/{system}/towers.pt", system=config["caption"]["systems"]),
        "results/coscos/ranks.json",
        "results/coscos/ranks.md",
        "results/figures/coscos_curves.png",
        patterns_outputs(),
        ["results/vision/proposal_quality.json"] if config["corpus"] == "synthetic" else [],
