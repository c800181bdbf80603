"""Task data the user supplies as files, for tasks whose data is not on the Hugging Face Hub: CCG
supertagging (CCGbank is licensed by the LDC).

The folder is given in the config (`intermediate.files: {ccg: <folder>}`, relative to the working directory)
and holds one file per split, `train.tsv` and `dev.tsv`: UTF-8, one token per line as `word<TAB>tag`, a blank
line between sentences. Each file reads as rows with `tokens` and `tags` (lists of strings), the columns the
tagging format reads; the label set is the sorted set of the training file's tags.
"""

from __future__ import annotations

from pathlib import Path

from xfer.errors import XferError

SUFFIX = ".tsv"


def split_file(folder: str | Path, split: str) -> Path:
    return Path(folder).expanduser() / f"{split}{SUFFIX}"


def problem(task, folder: str | None) -> str | None:
    """Why `task`'s files cannot be read from `folder` (one line), or None when every split's file exists."""
    from xfer.tasks import splits

    if folder is None:
        return f"task {task.name!r} needs data files: {task.user_files}"
    for split in splits(task.train) + splits(task.dev):
        path = split_file(folder, split.split)
        if not path.is_file():
            return f"task {task.name!r}: {path} not found; {task.user_files}"
    return None


def read_sentences(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(tokens, tags) per sentence of a `word<TAB>tag` file; a malformed line is an error naming file:line."""
    sentences: tuple[list[list[str]], list[list[str]]] = ([], [])
    words: list[str] = []
    tags: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines + [""], start=1):
        if not line.strip():
            if words:
                sentences[0].append(words)
                sentences[1].append(tags)
                words, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise XferError(f"{path}:{number}: expected 'word<TAB>tag', got {line!r}")
        words.append(parts[0].strip())
        tags.append(parts[1].strip())
    if not sentences[0]:
        raise XferError(f"{path}: no sentences (expected 'word<TAB>tag' lines, a blank line between sentences)")
    return sentences


def load(path: Path):
    """A `word<TAB>tag` file as a `datasets.Dataset` with `tokens` and `tags` columns."""
    import datasets

    tokens, tags = read_sentences(path)
    return datasets.Dataset.from_dict({"tokens": tokens, "tags": tags})


def labels(path: Path) -> tuple[str, ...]:
    """The label set of a training file: its tags, sorted."""
    return tuple(sorted({tag for sentence in read_sentences(path)[1] for tag in sentence}))
