"""Polyphonic music: next-step prediction of 88-note piano rolls (JSB Chorales, Nottingham, MuseData, Piano-midi.de).

Data: the Boulanger-Lewandowski et al. (2012) splits, read from the MATLAB files (``traindata`` / ``validdata`` /
``testdata``, each a 1 x N cell of T x 88 0/1 rolls, column k = MIDI pitch k + 21) or from the original pickles
(``{'train', 'valid', 'test'}`` -> songs -> time steps -> MIDI note numbers).

Pickles can run code when loaded, so one is read only when its sha256 is a known checksum (``files.KNOWN_PICKLE_SHA256``
or the data root's ``SHA256SUMS``) or when the task option ``allow_pickle=True`` says the user trusts it; even then
the unpickler accepts nothing but plain containers and numbers (and numpy arrays).

Sequences are cut RRU style into windows of ``window`` inputs (next-step targets), overlapping by ``stride`` in
training; evaluation windows do not overlap, so every frame after a song's first is scored exactly once.
``window=0`` keeps whole songs, zero padded. The loss (``MusicNLL``) sums the 88 sigmoid cross-entropies of a step
and averages over the real (unpadded) steps.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from rnns.errors import ConfigError

from . import files
from .base import Batch, Task, TaskSpec, register_task
from .common import ArrayTask, positive
from .objectives import MusicNLL

NOTES, LOWEST = 88, 21  # piano range: MIDI 21 (A0) .. 108 (C8)
MAT_KEYS = {"train": "traindata", "val": "validdata", "test": "testdata"}
PICKLE_KEYS = {"train": "train", "val": "valid", "test": "test"}
_SONGS: dict[tuple, dict[str, list[np.ndarray]]] = {}


def read_mat(path: Path, task: str) -> dict[str, list[np.ndarray]]:
    """{split: [rolls (T, 88) uint8]} from a MATLAB file; ConfigError when unreadable or not in that layout."""
    key = ("mat", str(path), path.stat().st_mtime_ns)
    if key in _SONGS:
        return _SONGS[key]
    import scipy.io  # lazy: only music needs scipy

    try:
        m = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises ValueError, TypeError, OSError, MatReadError... for damaged files
        raise files.corrupt(task, path, f"not a readable MATLAB file: {type(e).__name__}: {e}") from None
    out = {}
    for split, k in MAT_KEYS.items():
        if k not in m:
            keys = ", ".join(sorted(x for x in m if not x.startswith("__")))
            raise files.corrupt(task, path, f"no key {k!r} (keys: {keys})")
        cell = np.asarray(m[k])
        songs = []
        for i, roll in enumerate(cell.reshape(-1)):
            roll = np.asarray(roll)
            if roll.ndim != 2 or roll.shape[1] != NOTES or roll.shape[0] < 2:
                raise files.corrupt(task, path, f"{k}[{i}] has shape {roll.shape}, expected (T >= 2, {NOTES})")
            if roll.size and (roll.min() < 0 or roll.max() > 1):
                raise files.corrupt(task, path, f"{k}[{i}] is not a 0/1 piano roll")
            songs.append(np.ascontiguousarray(roll, dtype=np.uint8))
        if not songs:
            raise files.corrupt(task, path, f"{k} holds no songs")
        out[split] = songs
    _SONGS[key] = out
    return out


class _PlainUnpickler(pickle.Unpickler):
    """Only containers, numbers, strings and numpy arrays: any other global is refused."""

    ALLOWED = {("__builtin__", "set"), ("builtins", "set"), ("__builtin__", "frozenset"), ("builtins", "frozenset"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the pickle asks for {module}.{name}, which a note list never needs")


def notes_to_roll(steps, task: str, path: Path, where: str) -> np.ndarray:
    roll = np.zeros((len(steps), NOTES), dtype=np.uint8)
    for t, notes in enumerate(steps):
        for n in np.asarray(notes, dtype=np.float64).reshape(-1):
            k = int(n) - LOWEST
            if k != n - LOWEST or not 0 <= k < NOTES:
                raise files.corrupt(task, path, f"{where}: note {n:g} outside MIDI {LOWEST}..{LOWEST + NOTES - 1}")
            roll[t, k] = 1
    return roll


def read_pickle(root: Path, rel: str, task: str, allow_pickle: bool) -> dict[str, list[np.ndarray]]:
    path = root / rel
    known = files.check_sha(root, rel, task)  # True: matches a known checksum; None: none known (mismatch raises)
    if not known and not allow_pickle:
        raise ConfigError(f"task {task!r}: refusing to unpickle {path}: its sha256 is not a known checksum; "
                          "build with allow_pickle=True if you trust the file (or use the .mat files)")
    key = ("pkl", str(path), path.stat().st_mtime_ns)
    if key in _SONGS:
        return _SONGS[key]
    try:
        with open(path, "rb") as f:
            d = _PlainUnpickler(f, encoding="latin1").load()  # the originals are Python 2 pickles
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise files.corrupt(task, path, f"not a note-list pickle: {e}") from None
    if not isinstance(d, dict) or any(k not in d for k in PICKLE_KEYS.values()):
        raise files.corrupt(task, path, "expected a dict with keys 'train', 'valid', 'test'")
    out = {}
    for split, k in PICKLE_KEYS.items():
        songs = []
        for i, song in enumerate(d[k]):
            if len(song) < 2:
                raise files.corrupt(task, path, f"{k}[{i}] has fewer than 2 time steps")
            songs.append(notes_to_roll(song, task, path, f"{k}[{i}]"))
        if not songs:
            raise files.corrupt(task, path, f"{k} holds no songs")
        out[split] = songs
    _SONGS[key] = out
    return out


def window_starts(T: int, W: int, stride: int) -> list[int]:
    """Starts of windows of W inputs (W + 1 frames) covering every target frame 1..T-1 of a song of T frames.

    Full windows every ``stride`` steps, plus one last partial window when they miss the end (stride <= W)."""
    starts = list(range(0, max(T - 1 - W, 0) + 1, stride))
    if starts[-1] + W < T - 1:
        starts.append(starts[-1] + stride)
    return starts


def make_windows(songs: list[np.ndarray], W: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames (N, W+1, 88) uint8, targets per window (N,)): windows zero padded past a song's end."""
    spans = [(song, s) for song in songs for s in window_starts(song.shape[0], W, stride)]
    out = np.zeros((len(spans), W + 1, NOTES), dtype=np.uint8)
    n_valid = np.zeros(len(spans), dtype=np.int64)
    for i, (song, s) in enumerate(spans):
        piece = song[s:s + W + 1]
        out[i, :piece.shape[0]] = piece
        n_valid[i] = piece.shape[0] - 1
    return torch.from_numpy(out), torch.from_numpy(n_valid)


def collate(rows) -> Batch:
    frames, n_valid = rows  # (B, W+1, 88) uint8, (B,)
    W = frames.shape[1] - 1
    mask = torch.arange(W, device=frames.device) < n_valid[:, None]  # (B, W)
    m = mask.unsqueeze(-1)
    return Batch(frames[:, :-1].float() * m, frames[:, 1:].float() * m, mask)


def _music_task(name: str, *, data_dir, seed, device, allow_test, window: int, stride: int, batch_size: int,
                allow_pickle: bool) -> Task:
    positive(name, batch_size=batch_size)
    if window < 0 or int(window) != window:
        raise ConfigError(f"task {name!r}: window must be a non-negative integer (0 = whole songs), got {window!r}")
    if window and not (0 < stride <= window and int(stride) == stride):
        raise ConfigError(f"task {name!r}: stride must be an integer in [1, window={window}], got {stride!r}")
    root = files.need_root(data_dir, name)
    mat, pkl = files.MUSIC_SETS[name]
    rel = files.first_present(root, name, [f"music/{mat}", f"music/{pkl}"])
    if rel.endswith(".mat"):
        songs = read_mat(files.require(root, name, rel), name)
    else:
        songs = read_pickle(root, rel, name, bool(allow_pickle))
    longest = max(s.shape[0] for s in songs["train"]) - 1

    def split_rows(split: str, train: bool):
        W = window or max(s.shape[0] for s in songs[split]) - 1
        return make_windows(songs[split], W, (stride if train else W) if window else W)

    spec = TaskSpec(name, "rru", input_size=NOTES, output_size=NOTES, seq_len=window or longest, readout="all",
                    metric="nll", mode="min",
                    description=f"{name} piano rolls, {'whole songs' if not window else f'windows of {window}'}")
    data = {"train": split_rows("train", True), "val": split_rows("val", False),
            "test": lambda: split_rows("test", False)}
    task = ArrayTask(spec, MusicNLL(), data=data, collate=collate, batch_size=batch_size,
                     eval_batch_size=max(batch_size, 64), seed=seed, device=device, allow_test=allow_test,
                     files=[root / rel])
    task.n_songs = {"train": len(songs["train"]), "val": len(songs["val"])}
    if allow_test:
        task.n_songs["test"] = len(songs["test"])
    return task


def _register(name: str, title: str) -> None:
    def builder(*, data_dir, seed, device, allow_test, window: int = 200, stride: int = 100, batch_size: int = 16,
                allow_pickle: bool = False) -> Task:
        return _music_task(name, data_dir=data_dir, seed=seed, device=device, allow_test=allow_test, window=window,
                           stride=stride, batch_size=batch_size, allow_pickle=allow_pickle)

    builder.__name__ = name
    builder.__doc__ = (f"{title} (RRU music setup): 88-note next-step prediction, windows of 200 with stride 100, "
                       "NLL per time step.")
    register_task(name, paper="RRU (Zakovskis et al. 2021); data Boulanger-Lewandowski et al. 2012")(builder)


for _name, _title in (("jsb", "JSB Chorales"), ("nottingham", "Nottingham"), ("musedata", "MuseData"),
                      ("piano_midi", "Piano-midi.de")):
    _register(_name, _title)
