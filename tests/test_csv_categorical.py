"""load_csv with text (categorical) feature columns and missing values: one-hot encoding on
request, the training file's categories reused for new data, missing values dropped or filled,
and every other case a located error that says which option fits."""

from __future__ import annotations

import numpy
import pytest

from chainrule.data import DataError, load_csv

CSV = """size,color,weight,label
1.0,red,10,a
2.0,blue,,b
3.0,red,30,a
4.0,green,40,b
5.0,,50,a
"""


def test_text_columns_are_an_error_that_names_the_option_by_default(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(CSV)
    with pytest.raises(
        DataError,
        match=r"column 2 \('color'\): holds text \(e.g. 'red'\); load "
        r"it one-hot encoded with categorical='onehot'",
    ):
        load_csv(path)
    with pytest.raises(
        DataError,
        match=r"line 3, column 3 \('weight'\): missing value ''.*"
        r"missing='drop' or missing='mean'",
    ):
        load_csv(path, categorical="onehot")


def test_one_hot_columns_with_missing_values_dropped_or_filled(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(CSV)
    ds = load_csv(path, categorical="onehot", missing="drop")
    # the rows with a missing weight or colour are gone, and with them the colour blue
    assert ds.feature_names == ["size", "color=green", "color=red", "weight"]
    assert ds.X.tolist() == [[1, 0, 1, 10], [3, 0, 1, 30], [4, 1, 0, 40]]
    assert ds.categories == {"color": ["green", "red"]}
    filled = load_csv(path, categorical="onehot", missing="mean")
    assert filled.X[1, 4] == pytest.approx((10 + 30 + 40 + 50) / 4)  # the column's mean
    assert filled.X[4, 1:4].tolist() == [0, 0, 0]  # a missing category: no category
    assert filled.y.tolist() == [0, 1, 0, 1, 0]


def test_new_data_is_encoded_with_the_training_categories(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text(CSV)
    ds = load_csv(train, categorical="onehot", missing="drop")
    new = tmp_path / "new.csv"
    new.write_text("size,color,weight,label\n7,green,1,a\n8,red,2,b\n")
    again = load_csv(new, categories=ds.categories)
    assert again.feature_names == ds.feature_names
    numpy.testing.assert_array_equal(again.X[:, 1:3], [[1, 0], [0, 1]])
    new.write_text("size,color,weight,label\n7,purple,1,a\n8,red,2,b\n")
    with pytest.raises(DataError, match=r"category 'purple' is not among the training categories"):
        load_csv(new, categories=ds.categories)


def test_a_column_mixing_numbers_and_text_stays_an_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n5,six,0\n")
    with pytest.raises(DataError, match=r"'six' is not a number"):
        load_csv(path, categorical="onehot")
