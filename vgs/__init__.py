"""Visually grounded speech (Harwath & Glass 2015 and variants) as a Snakemake pipeline."""
import os

# Bitwise run-to-run reproducibility on CPU. By default MKL may change its thread count and code
# branch at run time (MKL_DYNAMIC), so a word net trained twice from the same data could differ in
# the last bits and then in its ranks. Strict CNR makes gemm bitwise reproducible even when the
# thread count changes (oneMKL "Reproducibility Conditions"); it measured no slower here. Set before
# torch loads its OpenMP runtime and MKL; this package is imported first by the Snakefile (so every
# job inherits it), by every script and by the tests. A user's own setting wins.
for _key, _value in {"MKL_CBWR": "AUTO,STRICT", "MKL_DYNAMIC": "FALSE", "OMP_DYNAMIC": "FALSE"}.items():
    os.environ.setdefault(_key, _value)
