"""``LBFGS``: PyTorch's ``torch.optim.LBFGS`` (limited-memory BFGS driven by a closure).

Example
-------
>>> import numpy, chainrule as cr
>>> from chainrule import optim
>>> w = cr.tensor([3.0, -2.0], requires_grad=True)
>>> opt = optim.LBFGS([w], lr=1.0)
>>> def closure():
...     opt.zero_grad()
...     loss = ((w - numpy.array([1.0, 2.0])) ** 2).sum()
...     loss.backward()
...     return loss
>>> _ = opt.step(closure)
>>> w.data.round(6)
array([1., 2.])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

import chainrule as cr

from .optim import Optimizer, _grad_array

__all__ = ["LBFGS"]


class LBFGS(Optimizer):
    """Limited-memory BFGS, PyTorch's algorithm and defaults (``lr=1``, ``max_iter=20``,
    ``max_eval=max_iter * 5 // 4``, ``tolerance_grad=1e-7``, ``tolerance_change=1e-9``,
    ``history_size=100``), without a line search: each iteration moves ``lr`` (the first
    ``min(1, 1 / sum|g|) * lr``) along the two-loop-recursion direction.

    ``step(closure)`` runs up to ``max_iter`` iterations; ``closure`` zeroes the gradients,
    computes the loss, calls ``backward()`` and returns the loss; ``step`` returns the first
    loss.  One parameter group only; parameters without a gradient count as zero gradient.
    ``line_search_fn='strong_wolfe'`` is not implemented and says so.

    Example
    -------
    >>> import numpy, chainrule as cr
    >>> from chainrule import optim
    >>> A = numpy.array([[3.0, 1.0], [1.0, 2.0]]); b = numpy.array([1.0, -1.0])
    >>> x = cr.tensor(numpy.zeros(2), requires_grad=True)
    >>> opt = optim.LBFGS([x], max_iter=50)
    >>> def closure():
    ...     opt.zero_grad()
    ...     loss = 0.5 * x @ (A @ x) - b @ x
    ...     loss.backward()
    ...     return loss
    >>> _ = opt.step(closure)
    >>> bool(numpy.allclose(x.data, numpy.linalg.solve(A, b)))
    True
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if line_search_fn is not None:
            raise NotImplementedError(
                f"LBFGS: line_search_fn={line_search_fn!r} is not implemented; use None (a "
                "fixed step of lr), or chainrule.sklearn's solver='lbfgs' / "
                "scipy.optimize.minimize with chainrule.value_and_grad for a line search"
            )
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(
            params,
            dict(
                lr=lr,
                max_iter=max_iter,
                max_eval=max_eval,
                tolerance_grad=tolerance_grad,
                tolerance_change=tolerance_change,
                history_size=history_size,
                line_search_fn=None,
            ),
        )
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params: list[cr.Tensor] = self.param_groups[0]["params"]
        self._lbfgs: dict[str, Any] = {"func_evals": 0, "n_iter": 0}

    def _flat_grad(self) -> numpy.ndarray:
        parts = []
        for p in self._params:
            g = _grad_array(p)
            parts.append(numpy.zeros(p.size) if g is None else numpy.asarray(g, float).ravel())
        return numpy.concatenate(parts)

    def _add(self, t: float, d: numpy.ndarray) -> None:
        offset = 0
        with cr.no_grad():
            for p in self._params:
                n = p.size
                x = numpy.asarray(p.data)
                p.data = numpy.asarray(x + t * d[offset : offset + n].reshape(x.shape), x.dtype)
                offset += n

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run up to ``max_iter`` L-BFGS iterations; return the closure's first loss."""
        if closure is None:
            raise ValueError("LBFGS.step needs a closure that re-evaluates the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        st = self._lbfgs
        with cr.enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        st["func_evals"] += 1
        flat_grad = self._flat_grad()
        if numpy.abs(flat_grad).max() <= tol_grad:
            return orig_loss
        d: Any = st.get("d")
        t: Any = st.get("t")
        old_dirs: Any = st.get("old_dirs")
        old_stps: Any = st.get("old_stps")
        ro: Any = st.get("ro")
        h_diag: Any = st.get("H_diag")
        prev_flat_grad: Any = st.get("prev_flat_grad")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            st["n_iter"] += 1
            if st["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / float(y @ y)
                q = -flat_grad
                al = [0.0] * len(old_dirs)
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = float(old_stps[i] @ q) * ro[i]
                    q = q - al[i] * old_dirs[i]
                r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = float(old_dirs[i] @ r) * ro[i]
                    r = r + (al[i] - be_i) * old_stps[i]
                d = r
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / float(numpy.abs(flat_grad).sum())) * lr if st["n_iter"] == 1 else lr
            if float(flat_grad @ d) > -tol_change:
                break
            self._add(t, d)
            evals = 0
            opt_cond = False
            if n_iter != max_iter:
                with cr.enable_grad():
                    loss = float(closure())
                flat_grad = self._flat_grad()
                opt_cond = bool(numpy.abs(flat_grad).max() <= tol_grad)
                evals = 1
            current_evals += evals
            st["func_evals"] += evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if numpy.abs(d * t).max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        st.update(
            d=d,
            t=t,
            old_dirs=old_dirs,
            old_stps=old_stps,
            ro=ro,
            H_diag=h_diag,
            prev_flat_grad=prev_flat_grad,
        )
        return orig_loss

    def _update(
        self, x: numpy.ndarray, grad: numpy.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> numpy.ndarray:  # pragma: no cover - step() is overridden
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The options and the L-BFGS memory (directions, steps, counters)."""
        out = super().state_dict()
        out["lbfgs"] = {
            k: ([numpy.array(a) for a in v] if isinstance(v, list) else v)
            for k, v in self._lbfgs.items()
        }
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""
        state = dict(state_dict)
        lbfgs = state.pop("lbfgs", None)
        super().load_state_dict(state)
        if lbfgs is not None:
            self._lbfgs = {
                k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in lbfgs.items()
            }
