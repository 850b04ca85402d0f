"""Writers: streamed files equal what one write of all samples gives, and nothing is half-written."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from tiny_runs import IMAGES, TABLE, make_run
from trustgen.data.schema import ImageSchema
from trustgen.errors import ConfigError
from trustgen.sampling import Sampler
from trustgen.sampling.writers import MAX_GRID_IMAGES, check_out_path, write_samples, write_stream

UNLABELLED = ImageSchema(channels=1, height=8, width=8, low=0.0, high=16.0, classes=None, source="declared")


@pytest.mark.parametrize("schema", [IMAGES, UNLABELLED], ids=["labelled", "unlabelled"])
def test_a_streamed_npz_is_the_file_np_savez_writes(schema, tmp_path):
    run = make_run("vae", schema)
    sampler = Sampler(run, batch_size=7)
    batch = sampler.sample(30, seed=1)
    written = write_stream(sampler.stream(30, seed=1), tmp_path / "s.npz", schema=schema, n=30)
    arrays = {"x": batch.data.x.astype(np.float32)}
    if batch.labels is not None:
        arrays["y"] = batch.labels.astype(np.int64)
    np.savez(tmp_path / "ref.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "s.npz") as a, zipfile.ZipFile(tmp_path / "ref.npz") as b:
        assert a.namelist() == b.namelist() == [f"{k}.npy" for k in arrays]
        for name in a.namelist():
            assert a.read(name) == b.read(name), name  # header and data, byte for byte
    with np.load(tmp_path / "s.npz") as z, np.load(tmp_path / "ref.npz") as ref:
        for k in arrays:
            assert z[k].dtype == ref[k].dtype and np.array_equal(z[k], ref[k])
    assert written.n == 30
    if batch.labels is not None:
        assert written.label_counts == {int(k): int(v) for k, v in zip(*np.unique(batch.labels, return_counts=True))}
    else:
        assert written.label_counts == {}


def test_a_streamed_csv_is_the_csv_of_all_samples(tmp_path):
    run = make_run("gan", TABLE)
    sampler = Sampler(run, batch_size=6)
    write_stream(sampler.stream(20, seed=4), tmp_path / "s.csv", schema=TABLE, n=20)
    expected = sampler.sample(20, seed=4).data.to_csv(index=False)
    assert (tmp_path / "s.csv").read_text() == expected
    assert len(pd.read_csv(tmp_path / "s.csv")) == 20


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_a_stream_that_fails_midway_leaves_no_file(suffix, tmp_path):
    schema = TABLE if suffix == ".csv" else IMAGES
    sampler = Sampler(make_run("vae", schema), batch_size=4)
    out = tmp_path / f"s{suffix}"

    def failing():
        yield from sampler.stream(4, seed=0)
        raise ConfigError("a hook could not act")

    with pytest.raises(ConfigError, match="could not act"):
        write_stream(failing(), out, schema=schema, n=8)
    with pytest.raises(ConfigError, match="hold 4, not the 8 announced"):
        write_stream(sampler.stream(4, seed=0), out, schema=schema, n=8)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary beside it


def test_bounds_are_checked_before_any_sample_is_drawn(tmp_path):
    def never():
        raise AssertionError("sampled")
        yield

    with pytest.raises(ConfigError, match="a .png grid shows at most 400 images, not 401: write .npz for more"):
        write_stream(never(), tmp_path / "g.png", schema=IMAGES, n=MAX_GRID_IMAGES + 1)
    with pytest.raises(ConfigError, match="at most 10,000 samples, not 10,001: write .csv"):
        check_out_path(tmp_path / "m.png", "tabular", 10_001)
    with pytest.raises(ConfigError, match="1,000,000,000,000 samples are more than one file takes"):
        check_out_path(tmp_path / "s.csv", None, 10 ** 12)
    assert list(tmp_path.iterdir()) == []


def test_a_png_grid_shows_every_image_it_is_given(tmp_path, png_images):
    run = make_run("vae", IMAGES)
    batch = Sampler(run).sample(57, seed=0)  # about 6 per class: more rows than one per class would be
    write_samples(batch, tmp_path / "g.png", schema=IMAGES)
    assert png_images["n"] == 57
    write_samples(Sampler(run).sample(100, labels=3, seed=0), tmp_path / "threes.png", schema=IMAGES)
    assert png_images["n"] == 100  # the README's threes.png: 100 threes, not the first 10
