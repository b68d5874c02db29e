"""``chainrule train`` / ``chainrule evaluate`` through ``train_cli.add_commands``, on bundled
data sets (reduced epochs) and on good and bad CSV files."""

from __future__ import annotations

import argparse
import json
import sys

import numpy
import pytest

from chainrule.cli.train import add_commands, build_model
from chainrule.data import DataError, load_csv
from chainrule.train.checkpoint import load


def run(argv):
    parser = argparse.ArgumentParser(prog="chainrule")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.run(args)


def test_train_and_evaluate_iris(tmp_path, capsys):
    out = tmp_path / "iris"
    assert (
        run(["train", "--dataset", "iris", "--epochs", "15", "--out", str(out), "--no-progress"])
        == 0
    )
    text = capsys.readouterr().out
    assert "data: iris: 150 samples, 4 features, 3 classes; train 120 / test 30" in text
    assert "test accuracy" in text and "curve.png" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoints",
        "curve.png",
        "metrics.json",
        "model.ckpt",
    ]
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] == 30 and metrics["test"]["accuracy"] >= 0.9
    assert len(metrics["history"]["history"]["loss"]) == 15
    ckpt = load(out / "model.ckpt")
    assert ckpt["config"]["model"] == "mlp:128,128"
    assert ckpt["classes"].tolist() == ["setosa", "versicolor", "virginica"]
    # evaluate rebuilds the model and the same test split: identical metrics
    assert run(["evaluate", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test"] == metrics["test"]


def test_digits_mlp_and_cnn_reduced(tmp_path, capsys):
    assert (
        run(
            [
                "train",
                "--dataset",
                "digits",
                "--epochs",
                "6",
                "--out",
                str(tmp_path / "mlp"),
                "--no-progress",
            ]
        )
        == 0
    )
    mlp = json.loads((tmp_path / "mlp" / "metrics.json").read_text())["test"]
    assert mlp["n"] == 360 and mlp["accuracy"] >= 0.95
    assert (
        run(
            [
                "train",
                "--dataset",
                "digits",
                "--model",
                "cnn:8,16,32",
                "--epochs",
                "3",
                "--out",
                str(tmp_path / "cnn"),
                "--no-progress",
            ]
        )
        == 0
    )
    cnn = json.loads((tmp_path / "cnn" / "metrics.json").read_text())["test"]
    assert cnn["accuracy"] >= 0.9
    text = capsys.readouterr().out
    assert "Conv2d > BatchNorm2d > ReLU > MaxPool2d" in text


def test_regression_dataset_and_progress_output(tmp_path, capsys):
    assert (
        run(
            [
                "train",
                "--dataset",
                "diabetes",
                "--epochs",
                "8",
                "--out",
                str(tmp_path),
                "--progress",
                "plain",
                "--model",
                "mlp:32",
            ]
        )
        == 0
    )
    captured = capsys.readouterr().out
    assert "Epoch 1/8: loss" in captured and "rmse" in captured
    test = json.loads((tmp_path / "metrics.json").read_text())["test"]
    assert test["r2"] > 0.2 and test["rmse"] < 70  # target in [25, 346]; std about 77
    assert run(["evaluate", str(tmp_path)]) == 0
    assert "test rmse" in capsys.readouterr().out


def test_resume_continues_to_the_same_model(tmp_path):
    base = ["train", "--dataset", "wine", "--model", "mlp:16", "--no-progress"]
    assert run(base + ["--epochs", "4", "--out", str(tmp_path / "a")]) == 0
    assert run(base + ["--epochs", "2", "--out", str(tmp_path / "b")]) == 0
    # a 4-epoch cosine schedule differs from a 2-epoch one; resume keeps the epoch count fixed
    assert run(base + ["--epochs", "4", "--out", str(tmp_path / "c")]) == 0
    a = load(tmp_path / "a" / "model.ckpt")["model"]
    c = load(tmp_path / "c" / "model.ckpt")["model"]
    for k in a:
        numpy.testing.assert_array_equal(a[k], c[k])
    # interrupted: only the per-epoch checkpoint of epoch 2 exists, then --resume
    assert (
        run(base + ["--epochs", "4", "--out", str(tmp_path / "d"), "--schedule", "constant"]) == 0
    )
    full = load(tmp_path / "d" / "model.ckpt")["model"]
    assert (
        run(base + ["--epochs", "2", "--out", str(tmp_path / "e"), "--schedule", "constant"]) == 0
    )
    assert (
        run(
            base
            + ["--epochs", "4", "--out", str(tmp_path / "e"), "--schedule", "constant", "--resume"]
        )
        == 0
    )
    resumed = load(tmp_path / "e" / "model.ckpt")["model"]
    for k in full:
        numpy.testing.assert_array_equal(full[k], resumed[k])


def test_csv_training_with_text_labels_and_a_named_target(tmp_path, capsys):
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    X = X[numpy.abs(X[:, 0] + X[:, 1]) > 0.5][:90]  # a margin around the boundary
    label = numpy.where(X[:, 0] + X[:, 1] > 0, "high", "low")
    path = tmp_path / "points.csv"
    with open(path, "w") as f:
        f.write("kind,x1,x2\n")
        for (a, b), k in zip(X, label):
            f.write(f"{k},{a:.6f},{b:.6f}\n")
    out = tmp_path / "run"
    assert (
        run(
            [
                "train",
                "--dataset",
                str(path),
                "--target",
                "kind",
                "--epochs",
                "30",
                "--batch-size",
                "16",
                "--out",
                str(out),
                "--no-progress",
                "--model",
                "mlp:16",
            ]
        )
        == 0
    )
    assert json.loads((out / "metrics.json").read_text())["test"]["accuracy"] >= 0.9
    capsys.readouterr()
    assert run(["evaluate", str(out), "--data", str(path)]) == 0
    assert "all 90 rows" in capsys.readouterr().out


BAD_CSVS = {
    "missing.csv": ("a,b,y\n1,2,0\n3,,1\n5,6,0\n", "line 3, column 2 ('b'): missing value"),
    "text.csv": ("a,b,y\n1,2,0\n3,4,1\n5,six,0\n", "line 4, column 2 ('b'): 'six' is not a number"),
    "one_row.csv": ("a,b,y\n1,2,0\n", "line 2: only one data row"),
    "empty.csv": ("", "the file is empty"),
    "blank.csv": ("\n\n  \n", "the file is empty"),
    "header_only.csv": ("a,b,y\n", "no data rows"),
    "ragged.csv": ("1,2,0\n3,4\n5,6,1\n", "line 2: 2 fields, expected 3"),
    "nan.csv": ("a,y\n1,0\nNaN,1\n2,1\n", "line 3, column 1 ('a'): missing value 'NaN'"),
    "inf.csv": ("a,y\n1,0\ninf,1\n2,1\n", "line 3, column 1 ('a'): non-finite value 'inf'"),
    "one_class.csv": ("a,y\n1,0\n2,0\n3,0\n", "single class"),
    "one_column.csv": ("a\n1\n2\n", "need at least one feature column"),
    "missing_target.csv": ("a,y\n1,0\n2,NA\n3,1\n", "line 3, column 2 ('y'): missing target"),
}


@pytest.mark.parametrize("name", list(BAD_CSVS))
def test_bad_csv_files_get_a_clear_error_naming_file_line_and_column(tmp_path, capsys, name):
    content, message = BAD_CSVS[name]
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as e:
        load_csv(path)
    assert str(path) in str(e.value) and message in str(e.value)
    assert (
        run(
            [
                "train",
                "--dataset",
                str(path),
                "--out",
                str(tmp_path / "o"),
                "--epochs",
                "1",
                "--no-progress",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("chainrule train: error: ") and message in err


def test_csv_header_detection_delimiters_and_targets(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("\ufeff1.5;2;7.25\n2.5;1;8.5\n3;0;9.75\n")  # BOM, ';', no header
    ds = load_csv(path)
    assert ds.feature_names == ["column 1", "column 2"] and ds.task == "regression"
    numpy.testing.assert_array_equal(ds.y, [7.25, 8.5, 9.75])
    ds = load_csv(path, target=0, task="regression")
    numpy.testing.assert_array_equal(ds.X[:, 1], [7.25, 8.5, 9.75])
    with pytest.raises(DataError, match="no column named 'z'"):
        load_csv(path, target="z")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"x","label"\n"1","a b"\n"2","c, d"\n')
    assert load_csv(quoted).classes.tolist() == ["a b", "c, d"]


def test_other_errors_exit_with_a_message(tmp_path, capsys):
    assert run(["train", "--dataset", "iris", "--model", "cnn", "--out", str(tmp_path)]) == 1
    assert "cnn needs image data" in capsys.readouterr().err
    assert run(["train", "--dataset", "nosuch", "--out", str(tmp_path)]) == 1
    assert "no such data set or file" in capsys.readouterr().err
    assert run(["train", "--dataset", "iris", "--model", "mlp:a", "--out", str(tmp_path)]) == 1
    assert "sizes must be integers" in capsys.readouterr().err
    assert run(["evaluate", str(tmp_path / "nothing")]) == 1
    assert "train first" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.ckpt").write_bytes(b"PK\x03\x04garbage")
    assert run(["evaluate", str(tmp_path / "broken")]) == 1
    assert "not a valid chainrule checkpoint" in capsys.readouterr().err


def test_curve_is_skipped_with_a_note_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert (
        run(
            ["train", "--dataset", "iris", "--epochs", "2", "--out", str(tmp_path), "--no-progress"]
        )
        == 0
    )
    assert "curve.png skipped: matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "curve.png").exists()


def test_build_model_shapes():
    assert build_model("cnn", 64, 10, image_shape=(8, 8)).num_parameters() == (
        (16 * 9 + 16) + 2 * 16 + (32 * 16 * 9 + 32) + 2 * 32 + (128 * 64 + 64) + (64 * 10 + 10)
    )
    assert build_model("linear", 5, 2).weight.shape == (2, 5)
