"""Loaders of the datasets not shipped in shared/data, on small generated files in the standard formats."""
import hashlib
import pickle
import statistics

import numpy as np
import pytest
import torch
import torchvision

from datasets import images, listops, music, text
from datasets.base import build_task
from rnns.errors import ConfigError
from tiny_data import (music_songs, write_aclimdb, write_cifar, write_enwik8, write_imdb_jsonl, write_listops,
                       write_music_pickle, write_text8, write_wikitext)


@pytest.fixture
def trust_cifar(monkeypatch):
    """torchvision checks the md5 of the real CIFAR batches; the generated ones cannot match it."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


# ---------------------------------------------------------------------------------------------------------- CIFAR


def test_scifar_colour(tmp_path, trust_cifar):
    write_cifar(tmp_path)
    task = build_task("scifar", data_dir=tmp_path, allow_test=True)
    assert (task.size("train"), task.size("val"), task.size("test")) == (99, 1, 20)
    tr, va = images.cifar_split(100, 0.01)
    ref_tr, ref_va = torch.utils.data.random_split(range(100), [99, 1], generator=torch.Generator().manual_seed(42))
    assert tr.tolist() == list(ref_tr.indices) and va.tolist() == list(ref_va.indices)
    ds = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    b = next(task.batches("val"))
    assert b.x.shape == (1, 1024, 3)
    img = torch.from_numpy(ds.data[va[0]]).float() / 255  # (32, 32, 3) HWC
    want = (img.reshape(1024, 3) - torch.tensor(images.CIFAR_MEAN)) / torch.tensor(images.CIFAR_STD)
    assert torch.allclose(b.x[0], want, atol=1e-6) and b.y[0] == ds.targets[va[0]]
    assert task.spec.readout == "mean" and task.spec.input_size == 3


@pytest.mark.parametrize("tokens", [False, True])
def test_scifar_gray(tmp_path, trust_cifar, tokens):
    from PIL import Image

    write_cifar(tmp_path)
    task = build_task("scifar_gray", data_dir=tmp_path, tokens=tokens)
    assert (task.size("train"), task.size("val")) == (90, 10)
    ds = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    grey = torch.from_numpy(np.array(Image.fromarray(ds.data[0]).convert("L"))).reshape(1024)
    assert torch.equal(images.to_gray(torch.from_numpy(ds.data[0]).reshape(1024, 3)), grey)  # torchvision Grayscale
    b = next(task.batches("val"))
    if tokens:
        assert b.x.shape == (10, 1024) and b.x.dtype == torch.long and task.spec.input_kind == "tokens"
    else:
        assert b.x.shape == (10, 1024, 1) and abs(float(b.x.mean())) < 3


def test_cifar_missing_batch_names_the_file(tmp_path, trust_cifar):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="data_batch_3.*cifar-10-python.tar.gz"):
        build_task("scifar", data_dir=tmp_path)


def test_cifar_corrupt_batch(tmp_path, trust_cifar):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x80\x02}q\x00")
    with pytest.raises(ConfigError, match="not a usable copy"):
        build_task("scifar", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------- text8 and enwik8


@pytest.mark.parametrize("zipped", [False, True])
def test_text8_split_and_vocabulary(tmp_path, zipped):
    data = write_text8(tmp_path, zipped=zipped)
    task = build_task("text8", data_dir=tmp_path, allow_test=True, bptt=50, batch_size=4)
    n = len(data)
    assert (task.size("train"), task.size("val"), task.size("test")) == (int(n * .9), int(n * .05),
                                                                         n - int(n * .9) - int(n * .05))
    assert task.spec.input_size == 27 and task.vocab.itos[0] == " " and task.spec.stateful
    stream = task.stream("train")
    assert "".join(task.vocab.itos[i] for i in stream[:200].tolist()) == data[:200].decode()
    b = next(task.batches("train"))
    assert b.x.shape == (4, 50) and torch.equal(b.x[:, 1:], b.y[:, :-1])


def test_enwik8_bytes_and_unknown(tmp_path):
    data = write_enwik8(tmp_path, n=5000)
    data = data[:int(len(data) * .9)] + b"\x01" + data[int(len(data) * .9) + 1:]  # a byte unseen in training
    (tmp_path / "enwik8" / "enwik8").write_bytes(data)
    task = build_task("enwik8", data_dir=tmp_path, bptt=40, batch_size=2)
    assert task.vocab.itos[-1] == "<unk>" and task.spec.input_size == len(task.vocab)
    assert int(task.stream("val")[0]) == len(task.vocab) - 1  # mapped to <unk>
    assert "<c3>" in task.vocab.itos  # bytes, not characters: the UTF-8 of "Ä" is two tokens
    zdir = tmp_path / "z"
    write_enwik8(zdir, zipped=True)
    assert build_task("enwik8", data_dir=zdir).size("train") > 0


def test_text8_unseen_character_is_an_error(tmp_path):
    data = bytearray(write_text8(tmp_path))
    data[-5] = ord("Q")
    (tmp_path / "text8" / "text8").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="absent from the training"):
        build_task("text8", data_dir=tmp_path, allow_test=True).stream("test")


def test_broken_zip(tmp_path):
    write_text8(tmp_path, zipped=True)
    z = tmp_path / "text8" / "text8.zip"
    z.write_bytes(z.read_bytes()[:100])
    with pytest.raises(ConfigError, match="zip"):
        build_task("text8", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------- WikiText-103


def test_wikitext103(tmp_path):
    counts = write_wikitext(tmp_path)
    with (tmp_path / "wikitext-103" / "wiki.valid.tokens").open("a") as f:
        f.write(" neverseen w1 \n")
    task = build_task("wikitext103", data_dir=tmp_path, allow_test=True, bptt=16, batch_size=4)
    assert (task.size("train"), task.size("test")) == (counts["train"], counts["test"])
    assert task.size("val") == counts["valid"] + 3
    assert task.vocab.itos[0] == "<eos>" and int(task.stream("val")[-3]) == task.vocab.stoi["<unk>"]
    assert not task.spec.stateful and task.spec.metric == "ppl"
    b = next(task.batches("train"))
    assert b.x.shape == (4, 16)
    again = build_task("wikitext103", data_dir=tmp_path, bptt=16)  # from the token cache
    assert torch.equal(again.stream("train"), task.stream("train")) and again.vocab.itos == task.vocab.itos


def test_stateless_windows_score_every_token_once(tmp_path):
    write_wikitext(tmp_path)
    task = build_task("wikitext103", data_dir=tmp_path, bptt=7, eval_batch_size=3)
    ys = torch.cat([b.y.reshape(-1) for b in task.batches("val")])
    assert torch.equal(ys, task.stream("val")[1:].long())
    tr = [b for b in task.batches("train", 0)]
    assert sum(b.y.numel() for b in tr) == (task.size("train") - 1) // 7 * 7


# ---------------------------------------------------------------------------------------------------------- ListOps


def _evaluate(ids):
    """Independent evaluation of a prefix token list with a stack."""
    stack = []
    for t in ids:
        s = listops.VOCAB[t]
        if s == listops.END:
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            op = stack.pop()
            v = {"[MIN": min, "[MAX": max, "[MED": lambda a: int(statistics.median(a)),
                 "[SM": lambda a: sum(a) % 10}[op](args)
            stack.append(v)
        elif s in listops.OPERATORS:
            stack.append(s)
        else:
            stack.append(int(s))
    assert len(stack) == 1
    return stack[0]


def test_listops_tsv(tmp_path):
    write_listops(tmp_path, n=(20, 5, 5))
    task = build_task("listops", data_dir=tmp_path, allow_test=True, batch_size=8)
    assert (task.size("train"), task.size("val"), task.size("test")) == (20, 5, 5)
    assert task.spec.input_size == 16 and task.spec.readout == "mean" and task.spec.seq_len == 2048
    rows = (tmp_path / "listops" / "basic_train.tsv").read_text().splitlines()
    src, tgt = rows[1].split("\t")
    assert src.startswith("( ") and "[" in src
    x, lens, y = task.rows("train")
    ids = x[0, :lens[0]].tolist()
    assert ids == listops.tokenize(src) and int(y[0]) == int(tgt) == _evaluate(ids)
    assert (x[0, lens[0]:] == 0).all() and 500 < int(lens[0]) < 2000
    short = build_task("listops", data_dir=tmp_path, max_len=100)
    assert short.rows("train")[0].shape[1] == 100 and int(short.rows("train")[1].max()) == 100


def test_listops_generator_follows_the_spec(tmp_path):
    task = build_task("listops", source="generate", n_train=30, n_val=5, n_test=5, data_seed=3, allow_test=True)
    x, lens, y = task.rows("train")
    assert (x.shape[0], task.size("val"), task.size("test")) == (30, 5, 5)
    assert ((lens > 500) & (lens < 2000)).all()
    for i in range(30):
        assert int(y[i]) == _evaluate(x[i, :lens[i]].tolist())
    tx, tl, _ = task.rows("test")
    seqs = {bytes(x[i, :lens[i]].tolist()) for i in range(30)} | {bytes(r[:n].tolist()) for r, n in zip(tx, tl)}
    assert len(seqs) == 35  # train and test never share an expression
    same = build_task("listops", source="generate", n_train=30, n_val=5, data_seed=3)
    assert torch.equal(same.rows("train")[0], x) and torch.equal(same.rows("val")[2], task.rows("val")[2])
    other = build_task("listops", source="generate", n_train=30, n_val=5, data_seed=4)
    assert not torch.equal(other.rows("train")[1], lens)
    assert "not the LRA release" in task.spec.description


def test_listops_bad_rows(tmp_path):
    write_listops(tmp_path, n=(5, 2, 2))
    p = tmp_path / "listops" / "basic_val.tsv"
    p.write_text(p.read_text() + "( [MAX 2 BOGUS ] )\t3\n")
    with pytest.raises(ConfigError, match="basic_val.tsv.*line"):
        build_task("listops", data_dir=tmp_path)
    p.write_text("Input\tOutput\n1\t1\n")
    with pytest.raises(ConfigError, match="header"):
        build_task("listops", data_dir=tmp_path)


# ---------------------------------------------------------------------------------------------------- music pickles


def test_music_pickle_needs_opt_in(tmp_path):
    d = write_music_pickle(tmp_path)
    with pytest.raises(ConfigError, match="allow_pickle=True"):
        build_task("jsb", data_dir=tmp_path)
    task = build_task("jsb", data_dir=tmp_path, allow_pickle=True, allow_test=True)
    assert (task.n_songs["train"], task.n_songs["val"], task.n_songs["test"]) == (12, 4, 5)
    whole = build_task("jsb", data_dir=tmp_path, allow_pickle=True, window=0)
    x, _ = whole.rows("train")
    song = d["train"][0]
    for t in (0, len(song) - 1):
        assert sorted((np.flatnonzero(x[0, t].numpy()) + 21).tolist()) == list(song[t])
    # a checksum listed in the root's SHA256SUMS counts as known: no opt-in needed
    sha = hashlib.sha256((tmp_path / "music" / "JSB Chorales.pickle").read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{sha}  ./music/JSB Chorales.pickle\n")
    assert build_task("jsb", data_dir=tmp_path).n_songs["train"] == 12


def test_music_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "music").mkdir()
    with open(tmp_path / "music" / "Nottingham.pickle", "wb") as f:
        pickle.dump({"train": [Evil()], "valid": [], "test": []}, f)
    with pytest.raises(ConfigError, match="builtins.print"):
        build_task("nottingham", data_dir=tmp_path, allow_pickle=True)


def test_music_windows_cover_every_frame():
    for T in (2, 50, 201, 202, 350, 1000):
        for W, stride in ((200, 100), (64, 64), (10, 3)):
            covered = np.zeros(T, int)
            for s in music.window_starts(T, W, stride):
                covered[s + 1:min(s + W, T - 1) + 1] += 1
            assert (covered[1:] >= 1).all() and covered[0] == 0
            if stride == W:
                assert (covered[1:] == 1).all()
    frames, n_valid = music.make_windows([np.ones((5, 88), np.uint8)], 8, 4)
    assert frames.shape == (1, 9, 88) and int(n_valid[0]) == 4 and int(frames[0, 5:].sum()) == 0


def test_music_pickle_notes_out_of_range(tmp_path):
    d = {"train": [[(20,), (60,)]], "valid": music_songs(1, 1), "test": music_songs(1, 2)}
    (tmp_path / "music").mkdir()
    with open(tmp_path / "music" / "MuseData.pickle", "wb") as f:
        pickle.dump(d, f)
    with pytest.raises(ConfigError, match="note 20"):
        build_task("musedata", data_dir=tmp_path, allow_pickle=True)


# ------------------------------------------------------------------------------------------------------------ IMDB


def test_imdb_from_aclimdb_folder(tmp_path):
    write_aclimdb(tmp_path, per_label=30)
    task = build_task("imdb_bytes", data_dir=tmp_path, n_val=10, length=64)
    assert (task.size("train"), task.size("val")) == (50, 10)
    rows = text.read_imdb(tmp_path, "imdb_bytes", "train")
    assert rows[0][1] == 1 and rows[-1][1] == 0 and len(rows) == 60  # pos then neg, by file id
    b = next(task.batches("train"))
    assert b.x.shape == (32, 64) and b.mask.shape == (32, 64)


@pytest.mark.parametrize("truncate", ["pre", "post"])
def test_imdb_words(tmp_path, truncate):
    write_imdb_jsonl(tmp_path, per_label=40)
    task = build_task("imdb_words", data_dir=tmp_path, n_val=16, length=12, vocab_size=5, truncate=truncate,
                      allow_test=True)
    assert task.vocab.itos[:3] == ["<pad>", "<start>", "<unk>"] and len(task.vocab) == 5
    assert task.spec.readout == "last" and task.objective.label_smoothing == 0.1
    x, lens, y = task.rows("train")
    assert x.shape == (64, 12) and int(x.max()) < 5
    if truncate == "post":
        assert (x[:, 0] == 1).all()  # the beginning is kept, start marker included
    short = lens < 12
    assert (x[short, 0] == 1).all()  # the start marker opens every review that fits
    for i in torch.nonzero(short).flatten()[:5].tolist():
        assert (x[i, lens[i]:] == 0).all() and (x[i, :lens[i]] != 0).all()
    assert task.size("test") == 80
    words = text.word_tokens("It's a <br />GREAT film, isn't it?")
    assert words == ["it's", "a", "great", "film", "isn't", "it"]


def test_imdb_words_keeps_the_end_with_pre_truncation(tmp_path):
    write_imdb_jsonl(tmp_path, per_label=10)
    docs = [["fine"] * 20 + ["wow"] * 5]
    v = text.Vocab(["<pad>", "<start>", "<unk>", "fine", "wow"], unk="<unk>")
    pre, _ = text.word_rows(docs, v, 8, "pre")
    post, _ = text.word_rows(docs, v, 8, "post")
    assert pre[0].tolist() == [3, 3, 3, 4, 4, 4, 4, 4]
    assert post[0].tolist() == [1, 3, 3, 3, 3, 3, 3, 3]


def test_listops_generator_draws_like_lra():
    """Our generator consumes random draws in the order of LRA's published generator (restated here as a plain
    reference: node kind, digit or argument count, arguments, then operator), so equal seeds grow equal trees."""
    import random

    def reference(rng, depth):
        r = rng.random() if depth < 10 else 1
        if r > 0.25:
            return [str(rng.choice(range(10)))]
        n = rng.randint(2, 10)
        args = [reference(rng, depth + 1) for _ in range(n)]
        return [rng.choice(["[MIN", "[MAX", "[MED", "[SM"])] + [t for a in args for t in a] + ["]"]

    for s in range(10):
        out = []
        listops._tree(random.Random(s), 1, 10, 10, out)
        assert [listops.VOCAB[i] for i in out] == reference(random.Random(s), 1)
