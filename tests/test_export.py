"""`fiagen export`: ONNX and TorchScript files of a checkpoint's inference path score real face crops as
torch does (max |difference| <= 1e-4 in fp32), carry the input spec and model card, and the ONNX one
and the TorchScript one run `fiagen predict --model` to the checkpoint's verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from fiagen.evaluate.scoring import video_crops
from fiagen.manifests.suites.listing import EvalItem
from fiagen.precompute.faces import FaceLandmarker
from fiagen.predict import export as export_mod
from fiagen.predict.engine import CROP_POLICY, EngineError, load_engine
from fiagen.predict.export import ExportError, export_model
from fiagen.predict.torchscript_engine import load_torchscript
from fiagen.train.checkpoint import load_detector, read_checkpoint, save_checkpoint
from fiagen.train.model import build_detector

SIZE = 96
CLIP = "real_videos/liveportrait_d12.mp4"


@pytest.fixture(scope="module")
def crops(test_data: Path) -> np.ndarray:
    """Evaluation crops (uint8, 96 px) of the faces of 4 frames of a shared real clip."""
    with FaceLandmarker() as faces:
        found = video_crops(EvalItem("d12", test_data / CLIP, -1, ""), 4, SIZE, faces)
    assert found.failure is None and len(found.crops) >= 4
    return found.crops


@pytest.fixture(scope="module")
def ckpt(crops: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test_efficientnet checkpoint with a random (seeded) head, and a threshold halfway between two of
    its scores on the crops, so that the verdicts on them are not all one."""
    torch.manual_seed(0)
    det = build_detector("test_efficientnet", SIZE).eval()
    torch.nn.init.normal_(det.net.get_classifier().weight, std=10.0)
    with torch.no_grad():
        p = np.sort(torch.sigmoid(det(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255)).numpy())
    cut = len(p) // 2
    threshold = {"value": float(p[cut - 1] + p[cut]) / 2, "source": "test: halfway through the crops' scores"}
    path = tmp_path_factory.mktemp("export") / "best.pt"
    save_checkpoint(path, det, epoch=3, val_auc=0.75, train_data="test crops", threshold=threshold)
    return path


@pytest.fixture(scope="module")
def onnx_file(ckpt: Path) -> Path:
    """The checkpoint exported to ONNX (beside it, as best.onnx)."""
    return export_model(ckpt, "onnx").path


@pytest.fixture(scope="module")
def ts_file(ckpt: Path) -> Path:
    """The checkpoint exported to TorchScript (beside it, as best.ts)."""
    return export_model(ckpt, "torchscript").path


def _torch_scores(ckpt: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    det, _ = load_detector(ckpt)
    with torch.inference_mode():
        logit = det(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255).numpy()
    return 1 / (1 + np.exp(-logit.astype(np.float64))), logit


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_scores_real_crops_as_torch_and_carries_spec_and_card(fmt, ckpt, crops, tmp_path, fiagen_main):
    out = tmp_path / f"det.{fmt}"
    code, stdout, _ = fiagen_main(["export", "--ckpt", str(ckpt), "--format", fmt, "--out", str(out)])
    assert code == 0 and stdout.startswith("detector: test_efficientnet @ 96 px (none init)")
    assert f"{out}: {fmt}, max |{fmt} - torch|" in stdout
    x = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        p, logit = session.run(["p_fake", "logit"], {"crops": x})
        meta = session.get_modelmeta().custom_metadata_map
        spec, card = json.loads(meta["fiagen.input_spec"]), json.loads(meta["fiagen.card"])
    else:
        module, spec_obj, card = load_torchscript(out)
        with torch.inference_mode():
            p, logit = (t.numpy() for t in module(torch.from_numpy(x)))
        spec = spec_obj.as_dict()
    want_p, want_logit = _torch_scores(ckpt, crops)
    assert np.abs(logit - want_logit).max() <= 1e-4 and np.abs(p - want_p).max() <= 1e-4
    assert np.ptp(want_logit) > 0.3  # the crops get different scores: the check is not on a constant
    assert spec["size"] == SIZE and spec["channel_order"] == "RGB" and spec["crop_policy"] == CROP_POLICY
    assert spec["mean"] == pytest.approx([0.485, 0.456, 0.406]) and spec["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert card == read_checkpoint(ckpt)["card"] and card["val_auc"] == 0.75


@pytest.mark.parametrize(("exported", "engine"), [("onnx_file", "onnxruntime"), ("ts_file", "torchscript")])
def test_exported_engine_gives_the_checkpoints_scores_and_verdicts(ckpt, exported, engine, crops, request):
    path = request.getfixturevalue(exported)
    assert path == ckpt.with_suffix({"onnxruntime": ".onnx", "torchscript": ".ts"}[engine])  # --out default
    exported_engine, torch_engine = load_engine(path), load_engine(ckpt)
    assert exported_engine.name == engine and exported_engine.spec == torch_engine.spec
    assert exported_engine.card["threshold"] == torch_engine.card["threshold"]
    got, want = exported_engine.score_crops(crops), torch_engine.score_crops(crops)
    assert np.abs(got - want).max() <= 1e-4
    threshold = exported_engine.card["threshold"]
    assert (got >= threshold).tolist() == (want >= threshold).tolist() and 0 < (want >= threshold).sum() < len(want)
    assert exported_engine.score_crops(crops[:0]).shape == (0,)
    floats = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255  # the other input form, in batches of 2
    assert np.abs(load_engine(path, batch_size=2).score_crops(floats) - want).max() <= 1e-4


def test_predict_with_the_exported_models_matches_the_checkpoint(ckpt, onnx_file, ts_file, test_data, fiagen_main):
    files = [str(test_data / CLIP), str(test_data / "real_videos" / "liveportrait_d3.mp4")]
    rows = {}
    for model in (["--ckpt", str(ckpt)], ["--model", str(onnx_file)], ["--model", str(ts_file)]):
        code, stdout, _ = fiagen_main(["predict", *model, "--frames", "3", "--json", *files])
        assert code == 0
        rows[model[-1]] = [json.loads(line) for line in stdout.splitlines()]
    for a, b in [(x, y) for other in (onnx_file, ts_file)
                 for x, y in zip(rows[str(ckpt)], rows[str(other)], strict=True)]:
        assert a["input"] == b["input"] and a["verdict"] == b["verdict"] and a["threshold"] == b["threshold"]
        assert abs(a["score"] - b["score"]) <= 1e-3  # rows round scores to 3 decimals


def test_export_and_engine_errors_are_one_line(ckpt, tmp_path, fiagen_main, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = fiagen_main(["export", "--ckpt", str(bad), "--out", str(tmp_path / "x.onnx")])
    assert code == 2 and err.startswith(f"fiagen: error: {bad} is not a fiagen") and len(err.splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()
    def off_by(path, fmt, x):  # a written file that scores 2e-4 away from torch
        p, logit = real_scores(path, fmt, x)
        return p, logit + 2e-4

    real_scores = export_mod._scores
    monkeypatch.setattr(export_mod, "_scores", off_by)
    with pytest.raises(ExportError, match="differs from torch by 0.0002 .> 0.0001.; nothing written"):
        export_model(ckpt, "torchscript", tmp_path / "off.ts")
    assert not list(tmp_path.glob("*off.ts*"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 not onnx")
    with pytest.raises(EngineError, match="cannot read .*junk.onnx as an ONNX model"):
        load_engine(junk)
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(2, 1), (torch.zeros(1, 2),), str(plain), dynamo=True, verbose=False)
    with pytest.raises(EngineError, match="not a detector exported by `fiagen export`"):
        load_engine(plain)
    junk_ts = tmp_path / "junk.ts"
    junk_ts.write_bytes(b"\x00\x01 not torchscript")
    with pytest.raises(EngineError, match="cannot read .*junk.ts as a TorchScript model"):
        load_engine(junk_ts)
    plain_ts = tmp_path / "plain.ts"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 1), torch.zeros(1, 2)), str(plain_ts))
    with pytest.raises(EngineError, match="not a detector exported by `fiagen export`"):
        load_engine(plain_ts)
