"""Visually grounded speech (Harwath & Glass 2015 and variants) as a Snakemake pipeline."""
import os

# oneMKL's conditions for bitwise run-to-run results on CPU ("Reproducibility Conditions"): no dynamic
# thread count, strict CNR (gemm reproducible whatever the thread count; measured no slower here). Not
# sufficient alone: training jobs also run one intra-op thread (README, "Run-to-run identity"). Set
# before torch loads its OpenMP runtime and MKL; this package is imported first by the Snakefile (so every
# job inherits it), by every script and by the tests. A user's own setting wins.
for _key, _value in {"MKL_CBWR": "AUTO,STRICT", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}.items():
    os.environ.setdefault(_key, _value)
