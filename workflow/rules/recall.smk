# recall stage: the one table where every system's test-split retrieval meets (Table 1 of each
# paper side by side), assembled from the rows each stage writes (contract: vgs/recall/table.py).
#   results/flickr8k_recall.{json,md}, results/recall/recall_table.html


rule recall_table:
    """Recall@K, median rank, mean ± sd over seeds and bootstrap intervals of every row + random."""
    input:
        recall_rows(),
    output:
        json=report("results/flickr8k_recall.json", category="Retrieval", caption="../report/recall_json.rst"),
        md="results/flickr8k_recall.md",
        html=report("results/recall/recall_table.html", category="Retrieval", caption="../report/recall.rst"),
    params:
        recall=config["recall"],
    log:
        log_path("recall_table"),
    benchmark:
        bench_path("recall_table")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        VGS_ENV
    script:
        "../../scripts/recall_table.py"
