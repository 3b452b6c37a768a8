# Checks the GPU resource convention through a real scheduler (tests/test_slurm.py):
# a rule's `gpu` resource must reach the job as a GPU allocation (--gpus=N), gpu=0 must not.
# Each rule records what SLURM gave its job step.


rule all:
    input:
        "gpu1.env",
        "gpu0.env",


rule probe:
    output:
        "gpu{n}.env",
    threads: 1
    resources:
        mem_mb=200,
        runtime=5,
        gpu=lambda wc: int(wc.n),
    shell:
        "env | grep -E '^(SLURM_JOB_ID|SLURM_JOB_GPUS|CUDA_VISIBLE_DEVICES)=' | sort > {output}"
