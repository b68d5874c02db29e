"""scikit-learn estimators backed by chainrule: :class:`MLPClassifier` and :class:`MLPRegressor`.

They follow scikit-learn's estimator interface and the parameter names of
``sklearn.neural_network.MLPClassifier``/``MLPRegressor`` (``hidden_layer_sizes``,
``activation``, ``solver``, ``alpha``, ``batch_size``, ``learning_rate``,
``learning_rate_init``, ``power_t``, ``max_iter``, ``max_fun``, ``tol``, ``n_iter_no_change``,
``early_stopping``, ``validation_fraction``, ``warm_start``, ``random_state``, …) with their
meaning, and ``fit(X, y, sample_weight=...)``, so they drop into pipelines, grid searches and
cross-validation.  The network is a :class:`chainrule.nn.MLP` (``model_``), trained with
chainrule's optimizers (``'adam'``, ``'sgd'``) or with SciPy's L-BFGS-B on the gradients from
:func:`chainrule.value_and_grad` (``'lbfgs'``, which needs SciPy); the loss is cross-entropy
(classification; binary log-loss per label for a multilabel indicator ``y``) or half the
squared error (regression), averaged with the sample weights, plus ``alpha / 2 * sum(W**2) /
sum(sample weights of the batch)`` on the weights, as scikit-learn.

Needs scikit-learn: ``pip install chainrule[train]``.

Example
-------
>>> from sklearn.datasets import load_iris
>>> from chainrule.sklearn import MLPClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=150,
...                     random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.95
True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # type: ignore[import-untyped]
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
    from sklearn.utils.metaestimators import available_if  # type: ignore[import-untyped]
    from sklearn.utils.multiclass import (  # type: ignore[import-untyped]
        check_classification_targets,
        type_of_target,
        unique_labels,
    )
    from sklearn.utils.validation import (  # type: ignore[import-untyped]
        _check_sample_weight,
        check_is_fitted,
        column_or_1d,
    )
except ImportError as e:  # pragma: no cover
    raise ImportError("chainrule.sklearn needs scikit-learn: pip install chainrule[train]") from e

import chainrule as cr

from . import nn, optim
from .nn import functional as F

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


def _validate(est: Any, X: Any, y: Any = "no_validation", reset: bool = True, **kw: Any) -> Any:
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        return est._validate_data(X, y, reset=reset, **kw)
    return validate_data(est, X, y, reset=reset, **kw)


def _values(x: Any) -> numpy.ndarray:
    return numpy.asarray(x.data) if isinstance(x, cr.Tensor) else numpy.asarray(x)


def _stochastic(est: Any) -> bool:
    """``partial_fit`` exists only for the stochastic solvers (scikit-learn's rule)."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers. {est.solver} is not "
            "stochastic."
        )
    return True


class _BaseMLP(BaseEstimator):  # type: ignore[misc]
    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # --- subclass hooks ---------------------------------------------------------------------

    def _targets(self, y: numpy.ndarray, first: bool, classes: Any = None) -> numpy.ndarray:
        raise NotImplementedError

    def _each(self, out: Any, t: numpy.ndarray) -> Any:
        """The loss of each sample, shape (n,)."""
        raise NotImplementedError

    def _loss(self, out: Any, t: numpy.ndarray, w: numpy.ndarray | None = None) -> Any:
        """The (sample-weighted) mean loss, scikit-learn's ``numpy.average``."""
        each = self._each(out, t)
        if w is None:
            return numpy.mean(each)
        return numpy.sum(each * w) / max(float(w.sum()), 1e-300)

    def _val_score(self, X: numpy.ndarray, t: numpy.ndarray) -> float:
        raise NotImplementedError

    # --- parameter checks -------------------------------------------------------------------

    def _check_params(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if numpy.ndim(sizes) == 0 else list(sizes)
        if any(not isinstance(s, (int, numpy.integer)) or s <= 0 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}"
            )
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.solver not in ("adam", "sgd", "lbfgs"):
            raise ValueError(f"solver must be 'lbfgs', 'sgd' or 'adam', got {self.solver!r}")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError(
                "learning_rate must be 'constant', 'invscaling' or 'adaptive', got "
                f"{self.learning_rate!r}"
            )
        if not self.power_t >= 0:
            raise ValueError(f"power_t must be >= 0, got {self.power_t!r}")
        if not isinstance(self.max_fun, (int, numpy.integer)) or self.max_fun < 1:
            raise ValueError(f"max_fun must be a positive int, got {self.max_fun!r}")
        if self.max_iter < 1 or self.learning_rate_init <= 0 or self.alpha < 0:
            raise ValueError(
                "max_iter and learning_rate_init must be positive and alpha non-negative"
            )
        if self.batch_size != "auto" and (
            not isinstance(self.batch_size, (int, numpy.integer)) or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be 'auto' or a positive int, got {self.batch_size!r}"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in (0, 1)")
        return [int(s) for s in sizes]

    # --- network ----------------------------------------------------------------------------

    def _initialize(self, n_features: int, n_outputs: int, sizes: list[int]) -> None:
        from sklearn.utils import check_random_state  # type: ignore[import-untyped]

        self._rng = numpy.random.default_rng(check_random_state(self.random_state).randint(2**31))
        self.model_ = nn.MLP(
            [n_features, *sizes, n_outputs], _ACTIVATIONS[self.activation], rng=self._rng
        )
        params = list(self.model_.parameters())
        self._optimizer: optim.Optimizer
        if self.solver == "adam":
            self._optimizer = optim.Adam(
                params,
                lr=self.learning_rate_init,
                betas=(self.beta_1, self.beta_2),
                eps=self.epsilon,
            )
        else:  # 'sgd' (and 'lbfgs', which steps through scipy, not this optimizer)
            self._optimizer = optim.SGD(
                params,
                lr=self.learning_rate_init,
                momentum=self.momentum,
                nesterov=self.nesterovs_momentum and self.momentum > 0,
            )
        self._weights = [m.weight for m in self.model_.modules() if isinstance(m, nn.Linear)]
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self.best_loss_: float = numpy.inf
        self.validation_scores_: list[float] | None = [] if self.early_stopping else None
        self.best_validation_score_: float = -numpy.inf
        self._no_improvement = 0
        self.n_outputs_ = n_outputs

    def _forward(self, X: numpy.ndarray) -> numpy.ndarray:
        self.model_.eval()
        with cr.no_grad():
            return _values(self.model_(X))

    def _epoch(self, X: numpy.ndarray, t: numpy.ndarray, sw: numpy.ndarray | None = None) -> float:
        n = len(X)
        bs = min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)
        order = self._rng.permutation(n) if self.shuffle else numpy.arange(n)
        self.model_.train()
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            self._optimizer.zero_grad()
            wb = None if sw is None else sw[idx]
            loss = self._loss(self.model_(X[idx]), t[idx], wb) + self._penalty(
                self._weights, len(idx) if wb is None else float(wb.sum())
            )
            loss.backward()
            self._optimizer.step()
            total += float(loss) * len(idx)
        self.t_ += n
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            for g in self._optimizer.param_groups:  # scikit-learn's rule, after each epoch
                g["lr"] = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        return total / n

    def _penalty(self, weights: list[Any], sw_sum: float) -> Any:
        if not self.alpha:
            return 0.0
        return (0.5 * self.alpha / max(sw_sum, 1e-300)) * sum(((w * w).sum() for w in weights), 0.0)

    def _fit_lbfgs(self, X: numpy.ndarray, t: numpy.ndarray, sw: numpy.ndarray | None) -> None:
        try:
            from scipy.optimize import minimize  # type: ignore[import-untyped]
        except ImportError:
            raise ImportError(
                f"{type(self).__name__}(solver='lbfgs') runs SciPy's L-BFGS-B, and SciPy is "
                "not installed: pip install scipy, or use solver='adam' or 'sgd'"
            ) from None
        names = [k for k, _ in self.model_.named_parameters()]
        shapes = [p.shape for _, p in self.model_.named_parameters()]
        sizes = [int(numpy.prod(s)) for s in shapes]
        weight_names = [k for k in names if k.endswith("weight")]
        sw_sum = float(len(X)) if sw is None else float(sw.sum())
        self.model_.train()

        def objective(params: dict[str, Any]) -> Any:
            out = nn.functional_call(self.model_, params, X)
            return self._loss(out, t, sw) + self._penalty([params[k] for k in weight_names], sw_sum)

        value_and_grad = cr.value_and_grad(objective)

        def unpack(flat: numpy.ndarray) -> dict[str, numpy.ndarray]:
            parts = numpy.split(flat, numpy.cumsum(sizes)[:-1])
            return {k: v.reshape(s) for k, v, s in zip(names, parts, shapes)}

        def fun(flat: numpy.ndarray) -> tuple[float, numpy.ndarray]:
            value, grads = value_and_grad(unpack(flat))
            g = numpy.concatenate([_values(grads[k]).ravel() for k in names])
            return float(_values(value)), g

        x0 = numpy.concatenate([_values(p).ravel() for _, p in self.model_.named_parameters()])
        res = minimize(
            fun,
            x0,
            method="L-BFGS-B",
            jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
        )
        self.model_.load_state_dict(unpack(numpy.asarray(res.x, dtype=float)), strict=False)
        self.n_iter_ = min(int(res.nit), self.max_iter)
        self.loss_ = float(res.fun)
        self.loss_curve_ = [self.loss_]
        if res.status != 0:
            warnings.warn(
                f"{type(self).__name__}: lbfgs failed to converge after {self.n_iter_} "
                f"iterations ({res.message}); increase max_iter or max_fun, or scale the data",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _fit(
        self,
        X: Any,
        y: Any,
        incremental: bool,
        classes: Any = None,
        sample_weight: Any = None,
    ) -> Any:
        sizes = self._check_params()
        first = not (incremental or self.warm_start) or not hasattr(self, "model_")
        X, y = _validate(
            self,
            X,
            y,
            reset=first,
            dtype=numpy.float64,
            multi_output=True,
            y_numeric=isinstance(self, MLPRegressor),
        )
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=numpy.float64)
        t = self._targets(y, first, classes)
        if first:
            n_out = (
                len(self.classes_)
                if isinstance(self, MLPClassifier)
                else (1 if t.ndim == 1 else t.shape[1])
            )
            self._initialize(X.shape[1], n_out, sizes)
        if self.solver == "lbfgs":
            if incremental:
                raise ValueError(
                    "partial_fit is only available for stochastic optimizers; "
                    "solver='lbfgs' is not stochastic"
                )
            self._fit_lbfgs(X, t, sw)
            return self
        if incremental:
            self.loss_ = self._epoch(X, t, sw)
            self.loss_curve_.append(self.loss_)
            self.n_iter_ += 1
            return self
        Xv: Any = None
        tv: Any = None
        if self.early_stopping:
            from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

            strat = (
                t
                if isinstance(self, MLPClassifier)
                and t.ndim == 1
                and len(numpy.unique(t)) > 1
                and min(numpy.bincount(t)) >= 2
                else None
            )
            parts = train_test_split(
                X,
                t,
                *([] if sw is None else [sw]),
                test_size=self.validation_fraction,
                random_state=int(self._rng.integers(2**31)),
                stratify=strat,
            )
            X, Xv, t, tv = parts[:4]
            sw = None if sw is None else parts[4]
        best_state = None
        for _ in range(self.max_iter):
            self.loss_ = self._epoch(X, t, sw)
            self.loss_curve_.append(self.loss_)
            self.n_iter_ += 1
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            if self.early_stopping:
                score = self._val_score(Xv, tv)
                assert self.validation_scores_ is not None
                self.validation_scores_.append(score)
                if score > self.best_validation_score_ + self.tol:
                    self._no_improvement = 0
                else:
                    self._no_improvement += 1
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_state = self.model_.state_dict()
            else:
                if self.loss_ > self.best_loss_ - self.tol:
                    self._no_improvement += 1
                else:
                    self._no_improvement = 0
                if self.loss_ < self.best_loss_:
                    self.best_loss_ = self.loss_
            if self._no_improvement > self.n_iter_no_change:
                lr = self._optimizer.param_groups[0]["lr"]
                if self.solver == "sgd" and self.learning_rate == "adaptive" and lr > 1e-6:
                    for g in self._optimizer.param_groups:  # scikit-learn: divide by 5, go on
                        g["lr"] = g["lr"] / 5.0
                    self._no_improvement = 0
                else:
                    break
        else:
            warnings.warn(
                f"{type(self).__name__}: the maximum number of iterations "
                f"({self.max_iter}) was reached and the optimization has not "
                "converged yet",
                ConvergenceWarning,
                stacklevel=3,
            )
        if self.early_stopping and best_state is not None:
            self.model_.load_state_dict(best_state)
        return self

    # --- scikit-learn style views of the weights ----------------------------------------------

    @property
    def coefs_(self) -> list[numpy.ndarray]:
        """Weight matrices as scikit-learn lays them out: ``(n_in, n_out)`` per layer."""
        check_is_fitted(self, "model_")
        return [numpy.array(w.data.T) for w in self._weights]

    @property
    def intercepts_(self) -> list[numpy.ndarray]:
        """Bias vectors, one per layer."""
        check_is_fitted(self, "model_")
        return [numpy.array(m.bias.data) for m in self.model_.modules() if isinstance(m, nn.Linear)]

    @property
    def n_layers_(self) -> int:
        check_is_fitted(self, "model_")
        return len(self._weights) + 1


class MLPClassifier(ClassifierMixin, _BaseMLP):  # type: ignore[misc]
    """Multilayer-perceptron classifier on chainrule (scikit-learn interface).

    Softmax output over ``classes_`` (two outputs for a binary problem) trained with
    cross-entropy; parameters as ``sklearn.neural_network.MLPClassifier``.  Supports
    ``fit``, ``partial_fit`` (``classes`` on the first call), ``predict``, ``predict_proba``,
    ``predict_log_proba``, ``score`` and ``get_params``/``set_params``.

    Examples
    --------
    >>> import numpy
    >>> from chainrule.sklearn import MLPClassifier
    >>> X = numpy.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 10)
    >>> y = numpy.array(["a", "b", "b", "a"] * 10)                # xor
    >>> clf = MLPClassifier((8,), activation="tanh", learning_rate_init=0.05, max_iter=300,
    ...                     random_state=1).fit(X, y)
    >>> clf.predict([[0.0, 1.0], [1.0, 1.0]]).tolist(), clf.classes_.tolist()
    (['b', 'a'], ['a', 'b'])
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multilabel": True}

    def _targets(self, y: numpy.ndarray, first: bool, classes: Any = None) -> numpy.ndarray:
        y = numpy.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            return self._multilabel_targets(y, first)
        if not first and getattr(self, "multilabel_", False):
            raise ValueError(
                f"y has shape {y.shape}, but the model was fitted on a multilabel indicator "
                f"matrix of {len(getattr(self, 'classes_', []))} columns"
            )
        self.multilabel_ = False
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if first:
            if classes is not None:
                self.classes_ = numpy.unique(numpy.asarray(classes))
            else:
                self.classes_ = unique_labels(y)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"MLPClassifier needs samples of at least 2 classes in the "
                    f"data, but the data contains only one class: "
                    f"{self.classes_[0]!r}"
                )
        elif classes is not None and not numpy.array_equal(
            numpy.unique(numpy.asarray(classes)), self.classes_
        ):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on the first call to "
                f"partial_fit ({self.classes_!r})"
            )
        unseen = numpy.setdiff1d(numpy.unique(y), self.classes_)
        if len(unseen):
            raise ValueError(f"y contains classes not seen before: {unseen.tolist()}")
        return numpy.searchsorted(self.classes_, y).astype(numpy.int64)

    def _multilabel_targets(self, y: numpy.ndarray, first: bool) -> numpy.ndarray:
        if type_of_target(y) != "multilabel-indicator":
            raise ValueError(
                f"MLPClassifier: a 2-D y must be a multilabel indicator matrix of 0/1 (one "
                f"column per label), got {type_of_target(y)!r} targets of shape {y.shape}"
            )
        if first:
            self.classes_ = numpy.arange(y.shape[1])
            self.multilabel_ = True
        elif not getattr(self, "multilabel_", False) or y.shape[1] != len(self.classes_):
            raise ValueError(
                f"y has shape {y.shape}, but the model was fitted on "
                + (
                    f"{len(self.classes_)} labels"
                    if getattr(self, "multilabel_", False)
                    else "one label per sample"
                )
            )
        return numpy.asarray(y, dtype=numpy.float64)

    def _each(self, out: Any, t: numpy.ndarray) -> Any:
        if t.ndim == 2:  # multilabel: scikit-learn's binary log-loss, summed over the labels
            return F.binary_cross_entropy_with_logits(out, t, reduction="none").sum(axis=1)
        return F.cross_entropy(out, t, reduction="none")

    def _val_score(self, X: numpy.ndarray, t: numpy.ndarray) -> float:
        out = self._forward(X)
        if t.ndim == 2:  # subset accuracy, as scikit-learn's score
            return float(numpy.mean(numpy.all((out > 0) == (t > 0.5), axis=1)))
        return float(numpy.mean(out.argmax(axis=1) == t))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (or a multilabel indicator
        matrix) for up to ``max_iter`` epochs, each sample's loss weighted by
        ``sample_weight``; return self."""
        self._fit(X, y, incremental=False, sample_weight=sample_weight)
        return self

    @available_if(_stochastic)  # type: ignore[untyped-decorator]
    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, *, sample_weight: Any = None
    ) -> MLPClassifier:
        """One epoch over ``X, y``; ``classes`` (all labels) is required on the first call
        (for a multilabel indicator ``y`` it may be omitted)."""
        multilabel = numpy.ndim(y) == 2 and numpy.shape(y)[1] > 1
        if not hasattr(self, "model_") and classes is None and not multilabel:
            raise ValueError("classes must be passed on the first call to partial_fit")
        self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)
        return self

    def predict_proba(self, X: Any) -> numpy.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order
        (multilabel: each label's own probability)."""
        check_is_fitted(self, "model_")
        X = _validate(self, X, reset=False, dtype=numpy.float64)
        if getattr(self, "multilabel_", False):
            return numpy.asarray(F.sigmoid(self._forward(X)))
        return numpy.asarray(F.softmax(self._forward(X), dim=1))

    def predict_log_proba(self, X: Any) -> numpy.ndarray:
        """Log class probabilities (finite even where a probability underflows)."""
        check_is_fitted(self, "model_")
        X = _validate(self, X, reset=False, dtype=numpy.float64)
        if getattr(self, "multilabel_", False):
            return numpy.asarray(F.log_sigmoid(self._forward(X)))
        return numpy.asarray(F.log_softmax(self._forward(X), dim=1))

    def predict(self, X: Any) -> numpy.ndarray:
        """The most probable class of each sample (multilabel: a 0/1 indicator matrix)."""
        check_is_fitted(self, "model_")
        X = _validate(self, X, reset=False, dtype=numpy.float64)
        if getattr(self, "multilabel_", False):
            return (self._forward(X) > 0).astype(numpy.int64)
        return self.classes_[numpy.argmax(self._forward(X), axis=1)]  # type: ignore[no-any-return]


class MLPRegressor(RegressorMixin, _BaseMLP):  # type: ignore[misc]
    """Multilayer-perceptron regressor on chainrule (scikit-learn interface).

    Linear output, trained on half the squared error (scikit-learn's loss); multi-output
    targets (2-D ``y``) are supported.  Supports ``fit``, ``partial_fit``, ``predict``,
    ``score`` (R²) and ``get_params``/``set_params``.

    Examples
    --------
    >>> import numpy
    >>> from chainrule.sklearn import MLPRegressor
    >>> X = numpy.linspace(-1, 1, 80).reshape(-1, 1); y = 2 * X[:, 0] - 1
    >>> reg = MLPRegressor((16,), learning_rate_init=0.05, max_iter=400, random_state=0)
    >>> reg.fit(X, y).score(X, y) > 0.99
    True
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"multioutput": True}

    def _targets(self, y: numpy.ndarray, first: bool, classes: Any = None) -> numpy.ndarray:
        y = numpy.asarray(y, dtype=numpy.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if not first and (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(
                f"y has {1 if y.ndim == 1 else y.shape[1]} outputs, the model {self.n_outputs_}"
            )
        return y

    def _each(self, out: Any, t: numpy.ndarray) -> Any:
        # scikit-learn's squared loss: half the squared error, averaged over the outputs
        d = F.mse_loss(out, t.reshape(len(t), -1), reduction="none")
        return 0.5 * numpy.mean(d, axis=1)

    def _val_score(self, X: numpy.ndarray, t: numpy.ndarray) -> float:
        from sklearn.metrics import r2_score  # type: ignore[import-untyped]

        return float(r2_score(t, self._forward(X).reshape(t.shape)))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train on ``X`` (n_samples, n_features) and ``y`` for up to ``max_iter`` epochs,
        each sample's loss weighted by ``sample_weight``; return self."""
        self._fit(X, y, incremental=False, sample_weight=sample_weight)
        return self

    @available_if(_stochastic)  # type: ignore[untyped-decorator]
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``X, y``."""
        self._fit(X, y, incremental=True, sample_weight=sample_weight)
        return self

    def predict(self, X: Any) -> numpy.ndarray:
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self, "model_")
        X = _validate(self, X, reset=False, dtype=numpy.float64)
        out = self._forward(X)
        return out[:, 0] if self.n_outputs_ == 1 else out
