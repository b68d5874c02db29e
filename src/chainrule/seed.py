"""The example that started chainrule (docs/seed.md): a 4-6-6-6-1 ReLU network, one sample.

The numbers are the user's own; ``forward`` is their forward pass, line for line.
"""

from __future__ import annotations

from typing import Any

import numpy

__all__ = [
    "X",
    "T",
    "W1",
    "W2",
    "W3",
    "W4",
    "B1",
    "B2",
    "B3",
    "B4",
    "PARAMS",
    "forward",
    "hand_derived_gradients",
]

X = numpy.array([[-1.086, 0.997, 0.283, -1.506]])
T = numpy.array([[-0.579]])
W1 = numpy.array(
    [
        [-0.339, -0.047, 0.746, -0.319, -0.222, -0.217],
        [1.103, 1.093, 0.502, 0.193, 0.369, 0.745],
        [-0.468, 0.588, -0.627, -0.319, 0.454, -0.714],
        [-0.070, -0.431, -0.128, -1.399, -0.886, -0.350],
    ]
)
W2 = numpy.array(
    [
        [0.379, -0.071, 0.001, 0.281, -0.359, 0.116],
        [-0.329, -0.705, -0.160, 0.234, 0.138, -0.005],
        [0.977, 0.169, 0.400, 0.914, -0.528, -0.424],
        [0.712, -0.326, 0.012, 0.437, 0.364, 0.716],
        [0.611, 0.437, -0.315, 0.325, 0.128, -0.541],
        [0.579, 0.330, 0.019, -0.095, -0.489, 0.081],
    ]
)
W3 = numpy.array(
    [
        [0.191, -0.339, 0.474, -0.448, -0.867, 0.424],
        [-0.165, -0.051, -0.342, -0.656, 0.512, -0.281],
        [0.678, 0.330, -0.128, -0.443, -0.299, -0.495],
        [0.852, 0.067, 0.470, -0.517, 0.074, 0.481],
        [-0.137, 0.421, -0.443, -0.557, 0.155, -0.155],
        [0.262, -0.807, 0.291, 1.061, -0.010, 0.014],
    ]
)
W4 = numpy.array([[0.073], [-0.760], [0.174], [-0.655], [-0.175], [0.507]])
B1 = numpy.array([-0.760, 0.174, -0.655, -0.175, 0.507, -0.300])
B2 = numpy.array([0.205, 0.413, 0.114, -0.560, -0.136, 0.800])
B3 = numpy.array([-0.827, -0.113, -0.225, 0.049, 0.305, 0.657])
B4 = numpy.array([-0.270])

PARAMS = {"W1": W1, "W2": W2, "W3": W3, "W4": W4, "B1": B1, "B2": B2, "B3": B3, "B4": B4}


def forward(
    X: Any, T: Any, W1: Any, W2: Any, W3: Any, W4: Any, B1: Any, B2: Any, B3: Any, B4: Any
) -> Any:
    """The user's forward pass, unchanged; returns the mean squared error.

    Example
    -------
    >>> from chainrule import seed
    >>> round(float(seed.forward(seed.X, seed.T, **seed.PARAMS)), 6)
    5.778522
    """
    W = [W1, W2, W3, W4]
    B = [B1, B2, B3, B4]
    Z1 = X.dot(W[0]) + B[0]
    A1 = numpy.maximum(0, Z1)
    Z2 = A1.dot(W[1]) + B[1]
    A2 = numpy.maximum(0, Z2)
    Z3 = A2.dot(W[2]) + B[2]
    A3 = numpy.maximum(0, Z3)
    Y = A3.dot(W[3]) + B[3]
    err = ((Y - T) ** 2).mean()
    return err


def hand_derived_gradients(
    X: Any, T: Any, W1: Any, W2: Any, W3: Any, W4: Any, B1: Any, B2: Any, B3: Any, B4: Any
) -> dict[str, Any]:
    """The backward pass derived by hand with the chain rule (plain NumPy, no chainrule).

    ``err = mean((Y - T)**2)`` over all ``Y.size`` elements, so ``dE/dY = 2 (Y - T) / Y.size``;
    a bias added to every row gets the gradient summed over the batch; ReLU passes the gradient
    where its input is positive.

    Example
    -------
    >>> from chainrule import seed
    >>> grads = seed.hand_derived_gradients(seed.X, seed.T, **seed.PARAMS)
    >>> {name: g.shape for name, g in grads.items() if name.startswith("W")}
    {'W1': (4, 6), 'W2': (6, 6), 'W3': (6, 6), 'W4': (6, 1)}
    """
    Z1 = X @ W1 + B1
    A1 = numpy.maximum(0, Z1)
    Z2 = A1 @ W2 + B2
    A2 = numpy.maximum(0, Z2)
    Z3 = A2 @ W3 + B3
    A3 = numpy.maximum(0, Z3)
    Y = A3 @ W4 + B4
    DY = 2 * (Y - T) / Y.size
    DW4 = A3.T @ DY
    DB4 = DY.sum(axis=0)
    DZ3 = DY @ W4.T * (Z3 > 0)
    DW3 = A2.T @ DZ3
    DB3 = DZ3.sum(axis=0)
    DZ2 = DZ3 @ W3.T * (Z2 > 0)
    DW2 = A1.T @ DZ2
    DB2 = DZ2.sum(axis=0)
    DZ1 = DZ2 @ W2.T * (Z1 > 0)
    DW1 = X.T @ DZ1
    DB1 = DZ1.sum(axis=0)
    return {"W1": DW1, "W2": DW2, "W3": DW3, "W4": DW4, "B1": DB1, "B2": DB2, "B3": DB3, "B4": DB4}
