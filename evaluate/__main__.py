"""``python -m evaluate {linear,knn,report}``."""

from evaluate.cli import main

main()
