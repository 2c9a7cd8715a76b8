"""Convert a musicnn TensorFlow checkpoint (MSD_musicnn or MTT_musicnn) to safetensors for the PyTorch port, with TF reference outputs.

Run once, at conversion time only, in a throwaway environment that has TensorFlow 2.x with tf.compat.v1
(2.15 works) and the `musicnn` package (its code targets TF1 through tf.compat.v1):

    python3.11 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" "librosa==0.10.2.post1" safetensors soundfile
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfvenv/bin/python scripts/convert_musicnn.py                        # MSD_musicnn (the default)
    /tmp/tfvenv/bin/python scripts/convert_musicnn.py --model MTT_musicnn

Writes emotion/features/weights/musicnn_msd.safetensors (MSD_musicnn; musicnn_mtt.safetensors for MTT_musicnn:
the same architecture, trained on MagnaTagATune's 50 tags) with the tag labels in its metadata (inference
variables only: conv kernels, biases, batch-norm gamma/beta/moving statistics; Adam slots dropped),
LICENSE-musicnn.md (ISC, from the package) and musicnn_msd_reference.npz (musicnn_mtt_reference.npz): a fixed
synthetic input (`reference_audio()`), the input patches exactly
as musicnn's own `batch_data` computes them, and TF's outputs for them (tag probabilities, penultimate
layer, mean/max pool) from musicnn's own `models.define_model` graph restored from the checkpoint.
This script needs neither torch nor musicrec.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "emotion" / "features" / "weights"
MODELS = {"MSD_musicnn": "msd", "MTT_musicnn": "mtt"}  # checkpoint folder in the package -> file stem suffix


def reference_audio(seconds: float = 6.5, sr: int = SR) -> np.ndarray:
    """A fixed, formula-only test signal: a chord with vibrato, a rising chirp and a 2 Hz pulse (float32)."""
    t = np.arange(int(seconds * sr)) / sr
    chord = sum(0.15 * np.sin(2 * np.pi * f * t + 0.3 * np.sin(2 * np.pi * 5 * t)) for f in (220.0, 277.18, 329.63))
    chirp = 0.1 * np.sin(2 * np.pi * (300 * t + 150 * t**2))
    pulse = 0.2 * np.sin(2 * np.pi * 80 * t) * (np.sin(2 * np.pi * 2 * t) > 0.7)
    return (chord + chirp + pulse).astype(np.float32)


def tf_name_to_torch() -> dict[str, str]:
    """Checkpoint variable prefix -> port parameter prefix (order of creation in musicnn's build_musicnn)."""
    return {
        "batch_normalization": "input_bn",
        "conv2d": "timbral74.conv", "batch_normalization_1": "timbral74.bn",
        "conv2d_1": "timbral77.conv", "batch_normalization_2": "timbral77.bn",
        "conv2d_2": "temporal128.conv", "batch_normalization_3": "temporal128.bn",
        "conv2d_3": "temporal64.conv", "batch_normalization_4": "temporal64.bn",
        "conv2d_4": "temporal32.conv", "batch_normalization_5": "temporal32.bn",
        "conv2d_5": "mid1.conv", "batch_normalization_6": "mid1.bn",
        "conv2d_6": "mid2.conv", "batch_normalization_7": "mid2.bn",
        "conv2d_7": "mid3.conv", "batch_normalization_8": "mid3.bn",
        "batch_normalization_9": "pool_bn",
        "dense": "dense", "batch_normalization_10": "dense_bn",
        "dense_1": "out",
    }


BN_SUFFIX = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def convert_variables(ckpt: str) -> dict[str, np.ndarray]:
    """Checkpoint variables in PyTorch layouts (Conv2d [out,in,kh,kw], Conv1d [out,in,k], Linear [out,in])."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(ckpt)
    names = tf_name_to_torch()
    out: dict[str, np.ndarray] = {}
    for var in sorted(reader.get_variable_to_shape_map()):
        if "Adam" in var or var.endswith("_power"):
            continue
        prefix, leaf = var.split("/", 1)
        target = names[prefix]
        value = reader.get_tensor(var).astype(np.float32)
        if leaf in BN_SUFFIX:
            out[f"{target}.{BN_SUFFIX[leaf]}"] = value
        elif leaf == "bias":
            out[f"{target}.bias"] = value
        elif leaf == "kernel" and value.ndim == 4:
            if target.startswith("mid"):  # conv over the full feature axis == Conv1d(in=kw, k=kh)
                out[f"{target}.weight"] = np.ascontiguousarray(value[:, :, 0, :].transpose(2, 1, 0))
            else:
                out[f"{target}.weight"] = np.ascontiguousarray(value.transpose(3, 2, 0, 1))
        elif leaf == "kernel":
            out[f"{target}.weight"] = np.ascontiguousarray(value.T)
        else:
            raise ValueError(f"unexpected checkpoint variable {var}")
    return out


def tf_reference(model_dir: Path, audio: np.ndarray, model: str = "MSD_musicnn") -> dict[str, np.ndarray]:
    """musicnn's own preprocessing and graph, restored from the checkpoint, on `audio`."""
    import soundfile as sf
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    from musicnn import configuration as config
    from musicnn import extractor, models

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "ref.wav"
        sf.write(wav, audio, SR, subtype="FLOAT")
        batch, _ = extractor.batch_data(str(wav), 187, 187)
    tf.compat.v1.reset_default_graph()
    labels = config.MSD_LABELS if model == "MSD_musicnn" else config.MTT_LABELS
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, config.N_MELS])
    is_training = tf.compat.v1.placeholder(tf.bool)
    logits, _tim, _tem, _c1, _c2, _c3, mean_pool, max_pool, penultimate = models.define_model(
        x, is_training, model, len(labels))
    probs = tf.nn.sigmoid(logits)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, str(model_dir) + "/")
        p, pen, mp, xp = sess.run([probs, penultimate, mean_pool, max_pool], {x: batch.astype(np.float32), is_training: False})
    return {"patches": batch.astype(np.float32), "tags": p, "penultimate": pen, "mean_pool": mp, "max_pool": xp,
            "labels": np.array(labels)}


def unchanged(out: Path, stem: str, weights: dict[str, np.ndarray], meta: dict[str, str], ref: dict[str, np.ndarray]) -> bool:
    """Whether `out` already holds these outputs: the same tensors and metadata (safetensors orders the metadata
    differently from run to run, and the file's bytes are its cache fingerprint) and reference outputs within 1e-5
    (TensorFlow's own run-to-run noise). Then the files are left alone, so a re-run never changes a fingerprint."""
    from safetensors import safe_open

    wfile, rfile = out / f"{stem}.safetensors", out / f"{stem}_reference.npz"
    if not (wfile.is_file() and rfile.is_file()):
        return False
    with safe_open(str(wfile), framework="np") as fh:
        if fh.metadata() != meta or set(fh.keys()) != set(weights):
            return False
        if not all(np.array_equal(fh.get_tensor(k), v) for k, v in weights.items()):
            return False
    old = np.load(rfile)
    return set(old.files) == set(ref) - {"labels"} and all(
        old[k].shape == ref[k].shape and np.allclose(old[k], ref[k], rtol=0, atol=1e-5) for k in old.files)


def main() -> None:
    import musicnn
    from safetensors.numpy import save_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--model", choices=tuple(MODELS), default="MSD_musicnn", help="which checkpoint of the package")
    args = parser.parse_args()
    pkg = Path(musicnn.__file__).parent
    model_dir = pkg / args.model
    stem = f"musicnn_{MODELS[args.model]}"
    args.out.mkdir(parents=True, exist_ok=True)
    weights = convert_variables(str(model_dir) + "/")
    meta = {"source": f"musicnn 0.1.0 {args.model} checkpoint (Pons & Serra, MTG-UPF), converted by scripts/convert_musicnn.py",
            "licence": "ISC (LICENSE-musicnn.md)"}
    ref = tf_reference(model_dir, reference_audio(), args.model)
    meta["labels"] = json.dumps([str(x) for x in ref["labels"]])
    if unchanged(args.out, stem, weights, meta, ref):
        print(f"{stem}.safetensors and {stem}_reference.npz in {args.out} already hold these outputs: left alone")
    else:
        save_file(weights, str(args.out / f"{stem}.safetensors"), metadata=meta)
        arrays: dict[str, Any] = {k: v for k, v in ref.items() if k != "labels"}  # Any: numpy's stub mixes **arrays with its flags
        np.savez_compressed(args.out / f"{stem}_reference.npz", **arrays)
    licence = pkg.parent / "musicnn-0.1.0.dist-info" / "LICENSE.md"
    shutil.copyfile(licence, args.out / "LICENSE-musicnn.md")
    total = sum(v.size for v in weights.values())
    print(f"{args.model}: {len(weights)} tensors ({total} parameters), reference outputs for {len(ref['tags'])} patches, in {args.out}")
    print("top tags on the reference input:", [str(ref["labels"][i]) for i in np.argsort(-ref["tags"].mean(0))[:5]])


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
