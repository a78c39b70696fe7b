#!/bin/bash
# Generation as a job array, then training once every task of it has succeeded.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p logs
generation=$(sbatch --parsable examples/slurm/generate.sbatch)
sbatch --dependency="afterok:${generation%%;*}" examples/slurm/train.sbatch
