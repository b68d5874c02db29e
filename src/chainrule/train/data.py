"""Data for training: bundled data sets, CSV loading, splits, scaling and mini-batches.

* :func:`load_dataset` -- scikit-learn's bundled data sets by name (``digits``, ``iris``,
  ``wine``, ``breast_cancer``, ``diabetes``; no download), or a CSV file by path;
* :func:`load_csv` -- a numeric CSV file with strict, located errors (:class:`DataError` names
  the file, line and column of the first problem);
* :func:`train_test_split` -- scikit-learn's split (same signature and meaning) in plain NumPy;
* :func:`holdout_split` -- the seeded (stratified) split that ``fit(validation_split=...)``
  uses;
* :class:`Standardizer` -- per-feature (or global) standardisation with a state dict;
* :func:`batches` / :class:`DataLoader` -- shuffled mini-batches from a seeded generator.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy

__all__ = [
    "Dataset",
    "DataError",
    "load_dataset",
    "load_csv",
    "train_test_split",
    "holdout_split",
    "Standardizer",
    "batches",
    "DataLoader",
    "encode_labels",
    "DATASETS",
]

DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")
_MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-", "--"}


class DataError(ValueError):
    """A data file cannot be used; the message names the file, line and column.

    Example
    -------
    >>> import os, tempfile
    >>> from chainrule.data import DataError, load_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("a,b\\n1,0\\nx,1\\n")
    >>> try:
    ...     load_csv(path)
    ... except DataError as e:
    ...     print(str(e).split(", ", 1)[1])
    line 3, column 1 ('a'): 'x' is not a number; feature columns must be numeric
    """


@dataclasses.dataclass
class Dataset:
    """Features ``X`` (float64, (n, d)), targets ``y`` and what they mean.

    ``task`` is ``'classification'`` (``y``: int codes 0..k-1, ``classes``: the original
    labels) or ``'regression'`` (``y``: float64).  ``image_shape`` is (H, W) for image data
    (digits: (8, 8)), else None.

    Example
    -------
    >>> from chainrule.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ds.X.shape, ds.image_shape, ds.classes[:3].tolist()
    ((1797, 64), (8, 8), [0, 1, 2])
    """

    X: numpy.ndarray
    y: numpy.ndarray
    task: str
    name: str
    feature_names: list[str]
    target_name: str = "target"
    classes: numpy.ndarray | None = None
    image_shape: tuple[int, int] | None = None
    categories: dict[str, list[str]] | None = None

    @property
    def n_classes(self) -> int:
        return 0 if self.classes is None else len(self.classes)


def encode_labels(y: Any) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Labels as integer codes 0..k-1 and the sorted distinct labels.

    Example
    -------
    >>> from chainrule.data import encode_labels
    >>> encode_labels(["b", "a", "b"])
    (array([1, 0, 1]), array(['a', 'b'], dtype='<U1'))
    """
    classes, codes = numpy.unique(numpy.asarray(y), return_inverse=True)
    return codes.reshape(-1).astype(numpy.int64), classes


def load_dataset(name: str, target: str | int | None = None, task: str | None = None) -> Dataset:
    """A bundled scikit-learn data set by name, or a CSV file by path.

    Named sets need scikit-learn (``pip install chainrule[train]``) but no download:
    ``digits`` (1797 8x8 images, 10 classes), ``iris``, ``wine``, ``breast_cancer``
    (classification) and ``diabetes`` (regression).  Anything else is read with
    :func:`load_csv` (``target``/``task`` are passed on).

    Example
    -------
    >>> from chainrule.data import load_dataset
    >>> ds = load_dataset("iris")
    >>> ds.X.shape, ds.task, ds.n_classes
    ((150, 4), 'classification', 3)
    """
    key = name.lower().replace("-", "_")
    if key in DATASETS and not os.path.exists(name):
        try:
            from sklearn import datasets as skd  # type: ignore[import-untyped]
        except ImportError:
            raise ImportError(
                f"the bundled data set {name!r} comes from scikit-learn: "
                "pip install chainrule[train]"
            ) from None
        loader = getattr(skd, f"load_{key}")
        bunch = loader()
        X = numpy.asarray(bunch.data, dtype=numpy.float64)
        feature_names = [
            str(f) for f in getattr(bunch, "feature_names", [f"x{i}" for i in range(X.shape[1])])
        ]
        if key == "diabetes":
            return Dataset(
                X,
                numpy.asarray(bunch.target, dtype=numpy.float64),
                "regression",
                key,
                feature_names,
                "target",
            )
        y = numpy.asarray(bunch.target, dtype=numpy.int64)
        names = getattr(bunch, "target_names", None)
        classes = (
            numpy.asarray(names)
            if names is not None and len(names) == y.max() + 1
            else numpy.unique(y)
        )
        return Dataset(
            X,
            y,
            "classification",
            key,
            feature_names,
            "target",
            classes,
            (8, 8) if key == "digits" else None,
        )
    if not os.path.exists(name):
        raise FileNotFoundError(
            f"no such data set or file: {name!r} (named data sets: {', '.join(DATASETS)})"
        )
    return load_csv(name, target=target, task=task)


def _number(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _text_columns(
    data: list[tuple[int, list[str]]],
    feats: list[int],
    categories: dict[str, list[str]] | None,
    names: list[str],
) -> list[int]:
    """Feature columns whose every present value is text (or named in ``categories``)."""
    out = []
    for i in feats:
        if categories is not None and names[i] in categories:
            out.append(i)
            continue
        present = [fs[i] for _, fs in data if fs[i].lower() not in _MISSING]
        if present and all(_number(v) is None for v in present):
            out.append(i)
    return out


def load_csv(
    path: str | os.PathLike[str],
    target: str | int | None = None,
    task: str | None = None,
    delimiter: str | None = None,
    header: bool | None = None,
    categorical: str = "error",
    missing: str = "error",
    categories: dict[str, list[str]] | None = None,
) -> Dataset:
    """Read a CSV file: one sample per row, the target in the last column.

    Parameters
    ----------
    path : path of the file (UTF-8; a byte-order mark is ignored).
    target : the target column's header name or index (negative counts from the end);
        default the last column.
    task : ``'classification'`` or ``'regression'``; by default classification when the
        target is text, or integers with at most 20 distinct values, else regression.
    delimiter : default ``','`` (``';'`` or a tab when the first line has those and no comma).
    header : whether the first row holds column names; by default detected (a first row with
        text where the next row has numbers).
    categorical : ``'error'`` (default: a feature column of text is an error that names it)
        or ``'onehot'``: a column whose every value is text becomes one 0/1 column per
        category (sorted; named ``'column=value'``; ``Dataset.categories`` records them).  A
        column mixing numbers and text is always an error (a typo, not a category).
    missing : ``'error'`` (default), ``'drop'`` (leave out rows with a missing feature) or
        ``'mean'`` (numeric columns: the column's mean; one-hot columns: all zeros).
    categories : the ``Dataset.categories`` of the training file, to encode new data the same
        way (a category not seen there is an error).

    Raises
    ------
    DataError
        Naming the file, line and column: an empty file, fewer than 2 data rows, a row with
        the wrong number of fields, a missing value (empty, NA, NaN, ?), text or a non-finite
        number in a feature column, an unknown target column.

    Example
    -------
    >>> import os, tempfile
    >>> from chainrule.data import load_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("a,b,label\\n1,2,yes\\n3,4,no\\n5,6,yes\\n")
    >>> ds = load_csv(path)
    >>> ds.X.tolist(), ds.y.tolist(), ds.classes.tolist()
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [1, 0, 1], ['no', 'yes'])
    """
    fname = os.fspath(path)
    try:
        with open(fname, "rb") as f:
            raw = f.read()
    except IsADirectoryError:
        raise DataError(f"{fname}: is a directory, not a CSV file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{fname}, line {line}: not valid UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise DataError(f"{fname}: the file is empty")
    if delimiter is None:
        head = text.lstrip().splitlines()[0]
        delimiter = ","
        if "," not in head:
            delimiter = ";" if ";" in head else ("\t" if "\t" in head else ",")
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    start = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                rows.append((start, [f.strip() for f in fields]))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{fname}, line {reader.line_num}: malformed CSV ({e})") from None
    if not rows:
        raise DataError(f"{fname}: the file has no rows")
    first_line, first = rows[0]
    has_header: bool
    if header is None:
        nonnum = [_number(v) is None or v.lower() in _MISSING for v in first]
        has_header = all(nonnum) or (
            len(rows) > 1
            and any(
                bad and i < len(rows[1][1]) and _number(rows[1][1][i]) is not None
                for i, bad in enumerate(nonnum)
            )
        )
    else:
        has_header = bool(header)
    if has_header:
        names = [v or f"column {i + 1}" for i, v in enumerate(first)]
        data = rows[1:]
    else:
        names = [f"column {i + 1}" for i in range(len(first))]
        data = rows
    ncol = len(names)
    if ncol < 2:
        raise DataError(
            f"{fname}, line {first_line}: found {ncol} column; need at least one "
            "feature column and a target column (is the delimiter "
            f"{delimiter!r} right?)"
        )
    if not data:
        raise DataError(f"{fname}: no data rows (only a header on line {first_line})")
    if len(data) < 2:
        raise DataError(f"{fname}, line {data[0][0]}: only one data row; training needs at least 2")
    for line, fields in data:
        if len(fields) != ncol:
            raise DataError(
                f"{fname}, line {line}: {len(fields)} fields, expected {ncol} "
                f"(as on line {first_line})"
            )
    # target column
    if target is None:
        t = ncol - 1
    elif isinstance(target, (int, numpy.integer)) and not isinstance(target, bool):
        if not -ncol <= int(target) < ncol:
            raise DataError(
                f"{fname}: target column index {target} is out of range for {ncol} columns"
            )
        t = int(target) % ncol
    else:
        if str(target) in names:
            t = names.index(str(target))
        elif str(target).lstrip("-").isdigit() and -ncol <= int(str(target)) < ncol:
            t = int(str(target)) % ncol
        else:
            raise DataError(
                f"{fname}: no column named {target!r}; the columns are {', '.join(names)}"
            )
    feats = [i for i in range(ncol) if i != t]
    if categorical not in ("error", "onehot"):
        raise ValueError(f"categorical must be 'error' or 'onehot', got {categorical!r}")
    if missing not in ("error", "drop", "mean"):
        raise ValueError(f"missing must be 'error', 'drop' or 'mean', got {missing!r}")
    if missing == "drop":
        data = [(ln, fs) for ln, fs in data if not any(fs[i].lower() in _MISSING for i in feats)]
        if len(data) < 2:
            raise DataError(f"{fname}: fewer than 2 rows left after dropping missing values")
    text_cols = _text_columns(data, feats, categories, names)
    if text_cols and categorical == "error" and categories is None:
        i = text_cols[0]
        example = next(fs[i] for _, fs in data if fs[i].lower() not in _MISSING)
        raise DataError(
            f"{fname}, column {i + 1} ({names[i]!r}): holds text (e.g. {example!r}); load it "
            "one-hot encoded with categorical='onehot', or remove the column"
        )
    cats: dict[str, list[str]] = dict(categories or {})
    for i in text_cols:
        if names[i] not in cats:
            cats[names[i]] = sorted({fs[i] for _, fs in data if fs[i].lower() not in _MISSING})
    X = numpy.empty((len(data), len(feats)))
    X_cat: dict[int, numpy.ndarray] = {
        i: numpy.zeros((len(data), len(cats[names[i]]))) for i in text_cols
    }
    missing_at: list[tuple[int, int]] = []
    raw_target: list[str] = []
    for r, (line, fields) in enumerate(data):
        for j, i in enumerate(feats):
            v = fields[i]
            where = f"{fname}, line {line}, column {i + 1} ({names[i]!r})"
            if v.lower() in _MISSING:
                if missing == "error":
                    raise DataError(
                        f"{where}: missing value {v!r}; remove or fill the row, or load with "
                        "missing='drop' or missing='mean'"
                    )
                missing_at.append((r, j))
                continue
            if i in X_cat:
                known = cats[names[i]]
                if v not in known:
                    raise DataError(
                        f"{where}: category {v!r} is not among the training categories {known[:10]}"
                    )
                X_cat[i][r, known.index(v)] = 1.0
                continue
            x = _number(v)
            if x is None:
                raise DataError(f"{where}: {v!r} is not a number; feature columns must be numeric")
            if not math.isfinite(x):
                raise DataError(f"{where}: non-finite value {v!r}")
            X[r, j] = x
        v = fields[t]
        if v.lower() in _MISSING:
            raise DataError(
                f"{fname}, line {line}, column {t + 1} ({names[t]!r}): missing target value {v!r}"
            )
        raw_target.append(v)
    nums = [_number(v) for v in raw_target]
    numeric = all(n is not None and math.isfinite(n) for n in nums)
    if task is None:
        if not numeric:
            task = "classification"
        else:
            vals = numpy.array(nums, dtype=float)
            integral = bool(numpy.all(vals == numpy.round(vals)))
            task = "classification" if integral and len(numpy.unique(vals)) <= 20 else "regression"
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    for j in sorted({j for _, j in missing_at}):  # missing='mean': numeric columns
        if feats[j] in X_cat:
            continue
        rows_j = [r for r, jj in missing_at if jj == j]
        present = numpy.setdiff1d(numpy.arange(len(data)), rows_j)
        X[rows_j, j] = X[present, j].mean() if len(present) else 0.0
    feature_names = [names[i] for i in feats]
    if X_cat:  # replace each text column by its one-hot columns, in place
        blocks, feature_names = [], []
        for j, i in enumerate(feats):
            if i in X_cat:
                blocks.append(X_cat[i])
                feature_names += [f"{names[i]}={c}" for c in cats[names[i]]]
            else:
                blocks.append(X[:, j : j + 1])
                feature_names.append(names[i])
        X = numpy.hstack(blocks)
    used = {names[i]: cats[names[i]] for i in text_cols} or None
    name = os.path.basename(fname)
    if task == "regression":
        if not numeric:
            bad = next(i for i, n in enumerate(nums) if n is None or not math.isfinite(n))
            raise DataError(
                f"{fname}, line {data[bad][0]}, column {t + 1} ({names[t]!r}): "
                f"{raw_target[bad]!r} is not a number; a regression target must "
                "be numeric"
            )
        return Dataset(
            X,
            numpy.array(nums, dtype=numpy.float64),
            "regression",
            name,
            feature_names,
            names[t],
            categories=used,
        )
    labels: Any = numpy.array(nums, dtype=float) if numeric else numpy.array(raw_target)
    # whole numbers become integer labels only where integers hold them exactly (1e20 and 2e20
    # stay two float classes instead of overflowing into one)
    if (
        numeric
        and numpy.all(labels == numpy.round(labels))
        and numpy.all(numpy.abs(labels) < 2**53)
    ):
        labels = labels.astype(numpy.int64)
    codes, classes = encode_labels(labels)
    if len(classes) < 2:
        raise DataError(
            f"{fname}: the target column {names[t]!r} has a single class "
            f"({classes[0]!r}); classification needs at least 2"
        )
    return Dataset(
        X, codes, "classification", name, feature_names, names[t], classes, categories=used
    )


def holdout_split(
    X: Any, y: Any, test_size: float = 0.2, stratify: bool = True, seed: int = 0
) -> tuple[numpy.ndarray, ...]:
    """Split ``X, y`` into train and test parts: ``X_train, X_test, y_train, y_test``.

    ``ceil(test_size * n)`` samples go to the test part.  With ``stratify`` (for integer class
    labels) every class keeps its proportion as closely as possible (largest remainders) and
    keeps at least one training sample.  Deterministic for a given ``seed``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.data import holdout_split
    >>> X, y = numpy.arange(20.0).reshape(10, 2), numpy.array([0] * 5 + [1] * 5)
    >>> Xtr, Xte, ytr, yte = holdout_split(X, y, 0.2, seed=0)
    >>> len(ytr), sorted(yte.tolist())
    (8, [0, 1])
    """
    X, y = numpy.asarray(X), numpy.asarray(y)
    n = len(X)
    if len(y) != n:
        raise ValueError(f"holdout_split: X has {n} samples, y has {len(y)}")
    if not 0 < test_size < 1:
        raise ValueError(f"holdout_split: test_size must be in (0, 1), got {test_size}")
    n_test = math.ceil(test_size * n)
    if n_test >= n:
        raise ValueError(f"holdout_split: {n} samples are too few for test_size {test_size}")
    rng = numpy.random.default_rng(seed)
    if stratify and y.dtype.kind in "iub":
        classes, codes = numpy.unique(y, return_inverse=True)
        codes = codes.reshape(-1)
        counts = numpy.bincount(codes, minlength=len(classes))
        exact = counts * n_test / n
        take = numpy.minimum(numpy.floor(exact).astype(int), counts - 1)
        take = numpy.maximum(take, 0)
        order = numpy.argsort(-(exact - take), kind="stable")
        short = n_test - int(take.sum())
        for c in order:
            if short <= 0:
                break
            if take[c] < counts[c] - 1:
                take[c] += 1
                short -= 1
        test = []
        for c in range(len(classes)):
            idx = numpy.flatnonzero(codes == c)
            test.append(rng.permutation(idx)[: take[c]])
        test_idx = numpy.sort(numpy.concatenate(test))
    else:
        test_idx = numpy.sort(rng.permutation(n)[:n_test])
    mask = numpy.zeros(n, dtype=bool)
    mask[test_idx] = True
    train_idx = rng.permutation(numpy.flatnonzero(~mask))
    test_idx = rng.permutation(test_idx)
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def _sizes(n: int, test_size: Any, train_size: Any) -> tuple[int, int]:
    """scikit-learn's rule: fractions of ``n`` (test rounded up, train down) or counts."""

    def count(v: Any, name: str, up: bool) -> int | None:
        if v is None:
            return None
        if isinstance(v, (bool, numpy.bool_)) or not isinstance(v, (int, float, numpy.number)):
            raise TypeError(f"train_test_split: {name} must be a float or an int, got {v!r}")
        if isinstance(v, (float, numpy.floating)):
            if not 0 < v < 1:
                raise ValueError(
                    f"train_test_split: {name}={v} should be a float in (0, 1) or an int"
                )
            return math.ceil(v * n) if up else math.floor(v * n)
        if not 0 < v < n:
            raise ValueError(
                f"train_test_split: {name}={v} should be in (0, {n}) samples, or a fraction"
            )
        return int(v)

    if test_size is None and train_size is None:
        test_size = 0.25
    n_test, n_train = count(test_size, "test_size", True), count(train_size, "train_size", False)
    if n_test is None:
        n_test = n - (n_train or 0)
    if n_train is None:
        n_train = n - n_test
    if n_train + n_test > n:
        raise ValueError(
            f"train_test_split: train ({n_train}) and test ({n_test}) samples add up to more "
            f"than the {n} samples given"
        )
    if n_train <= 0 or n_test <= 0:
        raise ValueError(
            f"train_test_split: with {n} samples, test_size={test_size} and "
            f"train_size={train_size} leave an empty train or test set"
        )
    return n_train, n_test


def _allocate(counts: numpy.ndarray, total: int) -> numpy.ndarray:
    """Split ``total`` among classes in proportion to ``counts`` (largest remainders)."""
    exact = numpy.asarray(counts * total / counts.sum(), dtype=float)
    take: numpy.ndarray = numpy.floor(exact).astype(int)
    for c in numpy.argsort(-(exact - take), kind="stable")[: total - int(take.sum())]:
        take[c] += 1
    return take


def train_test_split(
    *arrays: Any,
    test_size: Any = None,
    train_size: Any = None,
    random_state: Any = None,
    shuffle: bool = True,
    stratify: Any = None,
    **unknown: Any,
) -> list[Any]:
    """Split arrays into random train and test subsets, with scikit-learn's signature and
    meaning, in plain NumPy: ``X_train, X_test, y_train, y_test = train_test_split(X, y, ...)``.

    ``test_size`` / ``train_size``: a fraction (the test part rounded up, the train part down)
    or a number of samples; by default a quarter of the samples is the test part.
    ``random_state``: an int (reproducible), a ``numpy.random.Generator``, or None (fresh
    entropy).  ``shuffle=False`` takes the first samples for training.  ``stratify``: an array
    of class labels whose proportions both parts keep (every class needs two samples).  The
    parts are drawn with NumPy's generator, so they are not the very subsets that
    scikit-learn's function picks for the same ``random_state``.  For the seeded split that
    ``fit(validation_split=...)`` uses, see :func:`holdout_split`.

    Example
    -------
    >>> import numpy
    >>> from chainrule.data import train_test_split
    >>> X, y = numpy.arange(20.0).reshape(10, 2), numpy.array([0] * 5 + [1] * 5)
    >>> Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    >>> Xtr.shape, sorted(yte.tolist())
    ((8, 2), [0, 1])
    """
    if unknown:
        hint = (
            "; for the old seeded split use chainrule.data.holdout_split(X, y, test_size, "
            "seed=...), or here random_state=..."
            if "seed" in unknown
            else ""
        )
        raise TypeError(
            f"train_test_split() got unexpected keyword argument(s) {sorted(unknown)} "
            f"(it follows scikit-learn: test_size, train_size, random_state, shuffle, "
            f"stratify){hint}"
        )
    if not arrays:
        raise ValueError("train_test_split: at least one array is required")
    for i, a in enumerate(arrays):
        if numpy.ndim(a) == 0:
            raise TypeError(
                f"train_test_split: argument {i} is the scalar {a!r}, not an array; give the "
                "size by keyword (test_size=...), as scikit-learn does, or use "
                "chainrule.data.holdout_split(X, y, test_size, seed=...)"
            )
    n = len(arrays[0])
    lengths = [len(a) for a in arrays]
    if any(m != n for m in lengths):
        raise ValueError(
            f"train_test_split: the arrays have different numbers of samples: {lengths}"
        )
    if isinstance(stratify, (bool, numpy.bool_)):
        raise TypeError(
            "train_test_split: stratify takes the class labels (stratify=y), as in "
            "scikit-learn, not True/False"
        )
    n_train, n_test = _sizes(n, test_size, train_size)
    if isinstance(random_state, numpy.random.Generator):
        rng = random_state
    elif isinstance(random_state, numpy.random.RandomState):
        rng = numpy.random.default_rng(random_state.randint(2**31))
    else:
        rng = numpy.random.default_rng(random_state)
    if not shuffle:
        if stratify is not None:
            raise ValueError("train_test_split: stratified splitting needs shuffle=True")
        train_idx, test_idx = numpy.arange(n_train), numpy.arange(n_train, n_train + n_test)
    elif stratify is not None:
        labels = numpy.asarray(stratify)
        if len(labels) != n:
            raise ValueError(f"train_test_split: stratify has {len(labels)} labels for {n} samples")
        rows = labels.reshape(n, -1)
        _, codes = numpy.unique(rows, axis=0, return_inverse=True)
        codes = codes.reshape(-1)
        counts = numpy.bincount(codes)
        if counts.min() < 2:
            raise ValueError(
                "train_test_split: the least populated class in stratify has only 1 member; "
                "every class needs at least 2 to be in both parts"
            )
        if n_test < len(counts) or n_train < len(counts):
            raise ValueError(
                f"train_test_split: train ({n_train}) and test ({n_test}) parts must each hold "
                f"at least one sample of each of the {len(counts)} classes"
            )
        take_test = _allocate(counts, n_test)
        take_train = numpy.minimum(_allocate(counts, n_train), counts - take_test)
        short = n_train - int(take_train.sum())
        for c in numpy.argsort(-(counts - take_test - take_train), kind="stable"):
            extra = min(short, int(counts[c] - take_test[c] - take_train[c]))
            take_train[c] += extra
            short -= extra
        train_parts, test_parts = [], []
        for c in range(len(counts)):
            idx = rng.permutation(numpy.flatnonzero(codes == c))
            test_parts.append(idx[: take_test[c]])
            train_parts.append(idx[take_test[c] : take_test[c] + take_train[c]])
        train_idx = rng.permutation(numpy.concatenate(train_parts))
        test_idx = rng.permutation(numpy.concatenate(test_parts))
    else:
        order = rng.permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test : n_test + n_train]
    out: list[Any] = []
    for a in arrays:
        if isinstance(a, list):
            out += [[a[i] for i in train_idx], [a[i] for i in test_idx]]
        else:
            arr = numpy.asarray(a.data if hasattr(a, "requires_grad") else a)
            out += [arr[train_idx], arr[test_idx]]
    return out


class Standardizer:
    """Subtract the training mean and divide by the training standard deviation.

    ``per_feature=False`` uses one mean and deviation for all features (images).  A feature
    that is constant in the training data is only centred (scale 1), as scikit-learn's
    ``StandardScaler`` does.

    Example
    -------
    >>> import numpy
    >>> from chainrule.data import Standardizer
    >>> s = Standardizer().fit(numpy.array([[0.0, 5.0], [2.0, 5.0]]))
    >>> s.transform(numpy.array([[1.0, 6.0]]))
    array([[0., 1.]])
    """

    def __init__(self, per_feature: bool = True) -> None:
        self.per_feature = per_feature
        self.mean: numpy.ndarray | None = None
        self.scale: numpy.ndarray | None = None

    def fit(self, X: Any) -> Standardizer:
        X = numpy.asarray(X, dtype=numpy.float64)
        axis = 0 if self.per_feature else None
        # Scaled first by a power of two near each feature's largest magnitude, which is exact,
        # so squares cannot overflow (a feature of 1e300 keeps its spread instead of becoming
        # inf and zeroing the feature) and ordinary data gives the same bits as unscaled.
        peak = numpy.max(numpy.abs(X), axis=axis) if X.size else numpy.float64(1.0)
        ok = numpy.isfinite(peak) & (peak > 0)
        power = numpy.ldexp(1.0, numpy.where(ok, numpy.frexp(numpy.where(ok, peak, 1.0))[1], 0))
        scaled = X / power
        self.mean = numpy.asarray(scaled.mean(axis=axis) * power)
        std = numpy.asarray(scaled.std(axis=axis) * power)
        self.scale = numpy.where(std > 1e-12 * numpy.maximum(1.0, numpy.abs(self.mean)), std, 1.0)
        return self

    def transform(self, X: Any) -> numpy.ndarray:
        if self.mean is None or self.scale is None:
            raise RuntimeError("Standardizer: call fit() first")
        return numpy.asarray((numpy.asarray(X, dtype=numpy.float64) - self.mean) / self.scale)

    def fit_transform(self, X: Any) -> numpy.ndarray:
        return self.fit(X).transform(X)

    def state_dict(self) -> dict[str, Any]:
        return {"per_feature": self.per_feature, "mean": self.mean, "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> Standardizer:
        self.per_feature = bool(state["per_feature"])
        self.mean = numpy.asarray(state["mean"])
        self.scale = numpy.asarray(state["scale"])
        return self


def batches(
    n: int,
    batch_size: int,
    shuffle: bool = True,
    rng: numpy.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[numpy.ndarray]:
    """Index arrays of consecutive mini-batches of ``range(n)`` (the last may be smaller).

    ``drop_last`` leaves out an incomplete last batch (unless it is the only one).

    Example
    -------
    >>> import numpy
    >>> from chainrule.data import batches
    >>> [b.tolist() for b in batches(5, 2, shuffle=False)]
    [[0, 1], [2, 3], [4]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = (rng or numpy.random.default_rng()).permutation(n) if shuffle else numpy.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield order[i : i + batch_size]


class DataLoader:
    """Mini-batches ``(X[idx], y[idx])``, reshuffled every epoch from a seeded generator.

    Epoch ``e`` (counted by iterations over the loader, or set with :meth:`set_epoch`) uses
    ``numpy.random.default_rng((seed, e))``, so any epoch's order can be reproduced alone.

    Example
    -------
    >>> import numpy
    >>> from chainrule.data import DataLoader
    >>> loader = DataLoader(numpy.arange(6.0), numpy.arange(6), batch_size=4, seed=0)
    >>> [len(xb) for xb, yb in loader]
    [4, 2]
    """

    def __init__(
        self, X: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True, seed: int = 0
    ) -> None:
        self.X = numpy.asarray(X)
        self.y = None if y is None else numpy.asarray(y)
        if self.y is not None and len(self.y) != len(self.X):
            raise ValueError(f"DataLoader: X has {len(self.X)} samples, y has {len(self.y)}")
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-len(self.X) // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        rng = numpy.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        for idx in batches(len(self.X), self.batch_size, self.shuffle, rng):
            yield (self.X[idx], self.y[idx]) if self.y is not None else self.X[idx]
