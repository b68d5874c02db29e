"""Targets for ``fit``: which kind of loss a loss is, the accuracy that fits it, text labels,
and per-sample (or per-class) weights.

A loss is one of four kinds, whether given by name, as a function or as a loss module:

* ``'class'``: cross-entropy and NLL: integer class indices (N,), or class probabilities /
  one-hot rows of the output's shape; accuracy is the argmax against the label (or the
  target's argmax).
* ``'binary_logits'`` / ``'binary_prob'``: BCE on logits / on probabilities: 0/1 targets of
  the output's shape (one column or several labels per sample); accuracy is element-wise,
  thresholded at a logit of 0 / a probability of 0.5.
* ``'elementwise'``: MSE, L1, Huber, smooth L1: numeric targets of the output's shape.
* ``'custom'``: any other callable, given the targets as they are.

Example
-------
>>> from chainrule import nn
>>> from chainrule.train.targets import loss_kind
>>> loss_kind(nn.CrossEntropyLoss()), loss_kind(nn.functional.mse_loss), loss_kind(len)
('class', 'elementwise', 'custom')
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy

from .nn import functional as F
from .nn import layers as L

__all__ = [
    "loss_kind",
    "accuracy",
    "binary_accuracy",
    "encode_labels",
    "per_sample_loss",
    "class_sample_weights",
]

_KINDS: dict[Any, str] = {
    F.cross_entropy: "class",
    F.nll_loss: "class",
    F.binary_cross_entropy_with_logits: "binary_logits",
    F.binary_cross_entropy: "binary_prob",
    F.mse_loss: "elementwise",
    F.l1_loss: "elementwise",
    F.huber_loss: "elementwise",
    F.smooth_l1_loss: "elementwise",
}
_MODULE_KINDS: list[tuple[type, str]] = [
    (L.CrossEntropyLoss, "class"),
    (L.NLLLoss, "class"),
    (L.BCEWithLogitsLoss, "binary_logits"),
    (L.BCELoss, "binary_prob"),
    (L.MSELoss, "elementwise"),
    (L.L1Loss, "elementwise"),
    (L.HuberLoss, "elementwise"),
    (L.SmoothL1Loss, "elementwise"),
]
# what to suggest for each kind of target
FITTING_LOSS = {
    "labels": "loss='cross_entropy' (or nn.CrossEntropyLoss())",
    "multilabel": "loss='bce_with_logits' (or nn.BCEWithLogitsLoss())",
    "numbers": "loss='mse' (or nn.MSELoss())",
}


def loss_kind(loss: Any) -> str:
    """``'class'``, ``'binary_logits'``, ``'binary_prob'``, ``'elementwise'`` or ``'custom'``.

    Example
    -------
    >>> from chainrule import nn
    >>> from chainrule.train.targets import loss_kind
    >>> loss_kind(nn.BCEWithLogitsLoss())
    'binary_logits'
    """
    try:
        if loss in _KINDS:
            return _KINDS[loss]
    except TypeError:  # unhashable callables
        pass
    for cls, kind in _MODULE_KINDS:
        if isinstance(loss, cls):
            return kind
    return "custom"


def _n(pred: numpy.ndarray, y: numpy.ndarray, name: str) -> int:
    if len(pred) != len(y):
        raise ValueError(
            f"{name}: {len(pred)} outputs (shape {pred.shape}) but {len(y)} targets "
            f"(shape {y.shape})"
        )
    return len(pred)


def accuracy(pred: numpy.ndarray, y: numpy.ndarray) -> float:
    """Fraction of correct labels: the argmax of each output row (a logit > 0 for a single
    output) against the integer label, or against the argmax of a one-hot / probability row.

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.targets import accuracy
    >>> accuracy(numpy.array([[0.1, 0.9], [0.8, 0.2]]), numpy.array([1, 1]))
    0.5
    >>> accuracy(numpy.array([[0.1, 0.9], [0.8, 0.2]]), numpy.array([[0, 1.0], [1.0, 0]]))
    1.0
    """
    pred, y = numpy.asarray(pred), numpy.asarray(y)
    n = _n(pred, y, "accuracy")
    if pred.ndim >= 2 and pred.shape[1] > 1:
        labels = numpy.argmax(pred, axis=1)
        if y.shape == pred.shape:
            y = numpy.argmax(y, axis=1)
    else:
        labels = (pred.reshape(n) > 0).astype(numpy.int64)  # one logit per sample
    if y.size != labels.size:
        raise ValueError(
            f"accuracy: outputs of shape {pred.shape} give one label per sample, but the "
            f"targets have shape {y.shape}; give class indices (N,) or one-hot rows "
            f"{pred.shape}, or for several labels per sample use "
            f"{FITTING_LOSS['multilabel']}"
        )
    return float(numpy.mean(labels == y.reshape(labels.shape)))


def binary_accuracy(threshold: float = 0.0) -> Callable[[numpy.ndarray, numpy.ndarray], float]:
    """Element-wise accuracy of 0/1 targets: ``output > threshold`` (0 for logits, 0.5 for
    probabilities) against ``target > 0.5``, over all samples and labels.

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.targets import binary_accuracy
    >>> binary_accuracy(0.0)(numpy.array([[2.0, -1.0], [-3.0, -1.0]]),
    ...                      numpy.array([[1, 1], [0, 0]]))
    0.75
    """

    def accuracy(pred: numpy.ndarray, y: numpy.ndarray) -> float:
        pred, y = numpy.asarray(pred), numpy.asarray(y)
        _n(pred, y, "accuracy")
        if y.size != pred.size:
            raise ValueError(
                f"accuracy: binary outputs of shape {pred.shape} need 0/1 targets of the same "
                f"size, got shape {y.shape}"
            )
        return float(numpy.mean((pred.reshape(y.shape) > threshold) == (y > 0.5)))

    return accuracy


def encode_labels(
    y: numpy.ndarray, classes: numpy.ndarray | None
) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Text labels as class indices into ``classes`` (sorted, as scikit-learn's
    ``LabelEncoder``); ``classes=None`` takes them from ``y``.

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.targets import encode_labels
    >>> encode_labels(numpy.array(["dog", "cat", "dog"]), None)
    (array([1, 0, 1]), array(['cat', 'dog'], dtype='<U3'))
    """
    if y.ndim != 1:
        raise ValueError(f"fit: text labels must be one per sample (shape (N,)), got {y.shape}")
    values = y.astype(str) if y.dtype.kind == "O" else y
    if classes is None:
        classes, codes = numpy.unique(values, return_inverse=True)
        return codes.reshape(-1).astype(numpy.int64), classes
    codes = numpy.searchsorted(classes, values)
    codes = numpy.minimum(codes, len(classes) - 1)
    unknown = values[classes[codes] != values]
    if unknown.size:
        raise ValueError(
            f"fit: label {str(unknown[0])!r} was not among the training labels "
            f"{classes.tolist()[:10]}"
        )
    return codes.astype(numpy.int64), classes


def is_text(y: numpy.ndarray) -> bool:
    """Whether ``y`` holds text labels (str/bytes dtype, or objects that are all strings)."""
    if y.dtype.kind in "US":
        return True
    return y.dtype.kind == "O" and y.size > 0 and all(isinstance(v, str) for v in y.ravel())


def per_sample_loss(loss: Any, kind: str, out: Any, y: Any) -> Any:
    """The loss of each sample (shape (N,)): the loss with ``reduction='none'``, averaged over
    every axis but the first.

    Example
    -------
    >>> import numpy
    >>> from chainrule.nn import functional as F
    >>> from chainrule.train.targets import per_sample_loss
    >>> per_sample_loss(F.mse_loss, "elementwise", numpy.array([[1.0, 3.0]]), numpy.zeros((1, 2)))
    array([5.])
    """
    if kind == "custom":
        raise TypeError(
            "fit: sample_weight and class_weight need a loss chainrule knows (a name such as "
            "'cross_entropy', or an nn loss module), not a custom function"
        )
    if isinstance(loss, L._Loss):
        fn = copy.copy(loss)
        object.__setattr__(fn, "reduction", "none")
        each = fn(out, y)
    else:
        each = loss(out, y, reduction="none")
    shape = numpy.shape(each)
    if len(shape) > 1:
        each = numpy.mean(each, axis=tuple(range(1, len(shape))))
    return each


def class_sample_weights(class_weight: Any, y: numpy.ndarray) -> numpy.ndarray:
    """Keras' ``class_weight`` ``{class index: weight}`` as one weight per sample (classes
    not named weigh 1); the string ``'balanced'`` gives ``n / (n_classes * count)``
    (scikit-learn's rule).

    Example
    -------
    >>> import numpy
    >>> from chainrule.train.targets import class_sample_weights
    >>> class_sample_weights({1: 3.0}, numpy.array([0, 1, 1]))
    array([1., 3., 3.])
    >>> class_sample_weights("balanced", numpy.array([0, 1, 1]))
    array([1.5 , 0.75, 0.75])
    """
    labels = y
    if y.ndim == 2 and y.shape[1] > 1:
        labels = numpy.argmax(y, axis=1)  # one-hot rows
    labels = numpy.asarray(labels).reshape(-1)
    if labels.dtype.kind not in "iub":
        raise ValueError(
            "fit: class_weight needs class labels (integers, text, or one-hot rows); "
            f"the targets have dtype {y.dtype} and shape {y.shape}"
        )
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"fit: class_weight must be a dict or 'balanced', got {class_weight!r}"
            )
        classes, counts = numpy.unique(labels, return_counts=True)
        table = dict(zip(classes.tolist(), (len(labels) / (len(classes) * counts)).tolist()))
    elif isinstance(class_weight, dict):
        table = {int(k): float(v) for k, v in class_weight.items()}
    else:
        raise TypeError(
            f"fit: class_weight must be a dict {{class: weight}} or 'balanced', got "
            f"{type(class_weight).__name__}"
        )
    return numpy.array([table.get(int(c), 1.0) for c in labels], dtype=float)
