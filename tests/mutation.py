"""Mutation testing of the core functions: one-line breakages that the suite must catch.

    python -m tests.mutation               # every mutant; prints a markdown table (about 10 minutes)
    python -m tests.mutation --only NAME   # one mutant (names: --list)

Each mutant is applied to a copy of the tree in a temporary folder (the working tree is never
touched, so tests running beside it see the real code), then the tests that cover the mutated
function run there. A mutant is killed when they fail; the table names the first failing test.
The report, with why each survivor is equivalent, lives in tests/MUTATION.md. Runs on demand, not in CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str  # must occur exactly once in path
    mutated: str
    tests: tuple[str, ...]


RENDER_TESTS = ("tests/generate/test_views_are_renders.py",)
SAMPLING_TESTS = ("tests/generate/test_latent_statistics.py", "tests/generate/test_job.py")
STEP_TESTS = ("tests/train/test_positives.py", "tests/train/test_training_helps.py")
LOSS_TESTS = ("tests/train/test_losses.py",)
MUTANTS = (
    Mutant("render from a zero latent", "generate/job.py", "else generator(z, labels))",
           "else generator(z * 0, labels))", RENDER_TESTS),
    Mutant("render ignores the class", "generate/job.py", "else generator(z, labels))",
           "else generator(z, None if labels is None else labels * 0))", RENDER_TESTS),
    Mutant("anchor latents from the seed alone", "generate/sampling.py", "rng = np.random.default_rng([seed, anchor])",
           "rng = np.random.default_rng([seed])", SAMPLING_TESTS),
    Mutant("truncation ignored", "generate/sampling.py",
           "anchor_latent = spec.truncation * truncated_normal(rng, latent_dim)",
           "anchor_latent = truncated_normal(rng, latent_dim)", SAMPLING_TESTS),
    Mutant("sigma ignored", "generate/sampling.py", "latent = anchor_latent + spec.sigma * truncated_normal",
           "latent = anchor_latent + truncated_normal", SAMPLING_TESTS),
    Mutant("view noise not truncated", "generate/sampling.py",
           "latent = anchor_latent + spec.sigma * truncated_normal(rng, latent_dim)",
           "latent = anchor_latent + spec.sigma * rng.standard_normal(latent_dim)", SAMPLING_TESTS),
    Mutant("classes unbalanced", "generate/sampling.py", "return classes[int(order[position])]",
           "return classes[int(order[0])]", SAMPLING_TESTS),
    Mutant("SupCon positives are the group ids", "train/loop.py",
           "positives = (batch.labels if supervised else batch.group_ids).to(device)",
           "positives = batch.group_ids.to(device)", STEP_TESTS),
    Mutant("supcon never asked for", "train/loop.py", 'supervised = config["method"] == "supcon"',
           "supervised = False", STEP_TESTS),
    Mutant("views labelled in the wrong order", "train/loop.py",
           "labels = positives.repeat_interleave(batch.images.shape[1])",
           "labels = positives.repeat(batch.images.shape[1])", STEP_TESTS),
    Mutant("multipos sees two views", "train/loop.py",
           "images = normalize(batch.images.to(device, non_blocking=True).flatten(0, 1))",
           "images = normalize(batch.images[:, :2].to(device, non_blocking=True).flatten(0, 1))", STEP_TESTS),
    Mutant("the encoder never trains", "train/loop.py", "    optimizer.step()\n", "    pass\n", STEP_TESTS),
    Mutant("positive view is the anchor again", "train/data.py",
           "chosen = [0, *rng.permutation(np.arange(1, views_in_group))[: views - 1].tolist()]",
           "chosen = [0] * min(views, views_in_group)",
           ("tests/train/test_data.py", "tests/shards/test_chosen_views.py")),
    Mutant("a sample is its own positive", "train/losses.py",
           "positives = (labels[anchor_index][:, None] == labels[None, :]) & ~is_self",
           "positives = labels[anchor_index][:, None] == labels[None, :]", LOSS_TESTS),
    Mutant("temperature ignored", "train/losses.py", "logits = (unit[anchor_index] @ unit.T / temperature)",
           "logits = (unit[anchor_index] @ unit.T)", LOSS_TESTS),
    Mutant("kNN votes unweighted", "evaluate/knn.py", "(similarity / temperature).exp()",
           "torch.ones_like(similarity)", ("tests/evaluate/test_knn.py",)),
    Mutant("kNN takes the farthest", "evaluate/knn.py", ".topk(k, dim=1)", ".topk(k, dim=1, largest=False)",
           ("tests/evaluate/test_knn.py",)),
    Mutant("probe picks the worst candidate", "evaluate/linear.py",
           "key=lambda index: (-accuracy[index].item(), loss[index].item())",
           "key=lambda index: (accuracy[index].item(), loss[index].item())", ("tests/evaluate/test_linear.py",)),
    Mutant("probe features not standardised", "evaluate/linear.py",
           "return [(tensor - mean) / std for tensor in (fit, *others)]",
           "return [tensor for tensor in (fit, *others)]", ("tests/evaluate/test_linear.py",)),
    Mutant("resume forgets the weights", "train/loop.py", '        model.load_state_dict(resume_state["model"])\n',
           "        pass\n", ("tests/train/test_resume.py",)),
    Mutant("resume forgets the optimizer", "train/loop.py",
           '        optimizer.load_state_dict(resume_state["optimizer"])\n', "        pass\n",
           ("tests/train/test_resume.py",)),
    Mutant("no cosine decay", "train/optim.py", "* 0.5 * (1 + math.cos(math.pi * progress))", "* 1.0",
           ("tests/train/test_optim.py",)),
)


def copy_tree(destination: Path) -> None:
    """The tracked files and the untracked ones git does not ignore, as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text()
    if text.count(mutant.original) != 1:
        raise click.ClickException(f"mutant {mutant.name!r}: its line occurs {text.count(mutant.original)} times in "
                                   f"{mutant.path}, not once; update tests/mutation.py.")
    path.write_text(text.replace(mutant.original, mutant.mutated))


def run_mutant(mutant: Mutant) -> tuple[str, str, float]:
    """(killed/survived, the first failing test or '', seconds)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="genviews-mutant-") as folder:
        tree = Path(folder)
        copy_tree(tree)
        apply(mutant, tree)
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests],
                                cwd=tree, capture_output=True, text=True)
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", result.stdout, re.MULTILINE)
    verdict = "killed" if result.returncode != 0 else "survived"
    return verdict, failed.group(1) if failed else "", time.perf_counter() - started


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--only", default="", help="Run only the mutant of this name.")
@click.option("--list", "list_only", is_flag=True, help="List the mutants' names and exit.")
def main(only: str, list_only: bool) -> None:
    """Apply each mutant of the core functions to a copy of the tree and run the tests that cover it."""
    chosen = [mutant for mutant in MUTANTS if not only or mutant.name == only]
    if list_only or not chosen:
        click.echo("\n".join(mutant.name for mutant in MUTANTS))
        if not chosen:
            raise click.ClickException(f"no mutant is named {only!r}.")
        return
    click.echo("| mutant | file | verdict | killed by | seconds |\n|---|---|---|---|---|")
    survivors = 0
    for mutant in chosen:
        verdict, test, seconds = run_mutant(mutant)
        survivors += verdict == "survived"
        click.echo(f"| {mutant.name} | {mutant.path} | {verdict} | {test} | {seconds:.0f} |")
    click.echo(f"\n{len(chosen) - survivors} killed, {survivors} survived.")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
