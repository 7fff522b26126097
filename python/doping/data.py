"""PTB-format corpora: a directory with ptb.{train,valid,test}.txt, one sentence per line.

Tokens are whitespace-split words plus ``<eos>`` per line; the vocabulary is built from the
training split. ``tiny`` names the corpus shipped with doping (tests, demo).
"""

from __future__ import annotations

import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from doping.errors import DopingError
from doping.fileio import check_input_file

SPLITS = ("train", "valid", "test")
TINY = Path(__file__).parent / "corpus" / "tiny"
PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"


@dataclass
class Corpus:
    words: list[str]
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    path: str

    @property
    def vocab_size(self) -> int:
        return len(self.words)


def resolve(path: str | Path) -> Path:
    return TINY if str(path) == "tiny" else Path(path)


def _tokens(file: Path) -> list[str]:
    out = []
    check_input_file(file, "corpus file")
    try:
        with open(file, encoding="utf-8") as f:
            for line in f:
                out += line.split() + ["<eos>"]
    except UnicodeDecodeError as e:
        raise DopingError(f"corpus file {file} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    return out


def load_corpus(path: str | Path) -> Corpus:
    """Load a PTB-format directory (or ``"tiny"``). Words outside the training vocabulary map to
    ``<unk>`` when the corpus has it, else it is an error."""
    root = resolve(path)
    missing = [s for s in SPLITS if not (root / f"ptb.{s}.txt").is_file()]
    if missing:
        raise DopingError(
            f"corpus folder {root} lacks {', '.join(f'ptb.{s}.txt' for s in missing)}; pass a folder holding "
            "ptb.train.txt, ptb.valid.txt and ptb.test.txt, or fetch PTB with `doping data download DIR`"
        )
    toks = {s: _tokens(root / f"ptb.{s}.txt") for s in SPLITS}
    words = sorted(set(toks["train"]))
    index = {w: i for i, w in enumerate(words)}
    unk = index.get("<unk>")
    ids = {}
    for s in SPLITS:
        try:
            ids[s] = torch.tensor([index[w] if unk is None else index.get(w, unk) for w in toks[s]], dtype=torch.long)
        except KeyError as e:
            raise DopingError(f"{root}/ptb.{s}.txt has the word {e.args[0]!r}, which is not in the training "
                              "split and the corpus has no <unk>") from None
    return Corpus(words, ids["train"], ids["valid"], ids["test"], str(root))


def batchify(data: torch.Tensor, batch: int) -> torch.Tensor:
    """(tokens,) -> (steps, batch): column b is a contiguous stretch of the corpus."""
    steps = data.numel() // batch
    if steps < 2:
        raise DopingError(f"{data.numel()} tokens are too few for batch size {batch}")
    return data[: steps * batch].view(batch, steps).t().contiguous()


def download_ptb(dest: str | Path, url: str = PTB_URL, timeout: float = 30.0) -> Path:
    """Fetch Mikolov's simple-examples archive and extract the three PTB files into ``dest``."""
    dest = Path(dest)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "simple-examples.tgz"
            with urllib.request.urlopen(url, timeout=timeout) as r, open(archive, "wb") as f:
                f.write(r.read())
            with tarfile.open(archive) as tf:
                dest.mkdir(parents=True, exist_ok=True)
                for s in SPLITS:
                    member = tf.extractfile(f"./simple-examples/data/ptb.{s}.txt")
                    (dest / f"ptb.{s}.txt").write_bytes(member.read())
    except (OSError, tarfile.TarError, KeyError, AttributeError) as e:
        raise DopingError(
            f"could not download PTB from {url} ({e}); without network, copy ptb.train.txt, ptb.valid.txt and "
            f"ptb.test.txt into {dest} by hand"
        ) from None
    return dest
