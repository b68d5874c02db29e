"""The house rules: layers import one way, no function is defined twice, and the public names and
old module paths keep working."""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys
import warnings

import pytest

import chainrule

SRC = pathlib.Path(chainrule.__file__).resolve().parent

# Lowest first. A module may import its own layer and the layers below it. The package root and
# the public modules beside the layer folders are the public API: they stand with the training
# library, which is built on them alone, and below the command line, which may use everything.
LAYERS = ["engine", "program", "readers", "train", "cli"]
API = LAYERS.index("train")
PUBLIC_MODULES = {
    "chainrule.nn",
    "chainrule.optim",
    "chainrule.data",
    "chainrule.sklearn",
    "chainrule.functions",
    "chainrule.seed",
    "chainrule.distributed",
    "chainrule.numpy",
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    if name == "chainrule.__main__":  # `python -m chainrule` is the command line
        return LAYERS.index("cli")
    return API


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """Every chainrule module ``path`` imports, at any depth (function bodies too)."""
    return imports_of(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_of(text: str, name: str, is_package: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(text)
    package = name if is_package else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from chainrule import nn` imports the module chainrule.nn
            found += [
                (node.lineno, f"{target}.{a.name}")
                for a in node.names
                if f"{target}.{a.name}" in PUBLIC_MODULES
            ]
    return [(line, t) for line, t in found if t == "chainrule" or t.startswith("chainrule.")]


SOURCES = sorted(SRC.rglob("*.py"))


def test_the_tree_has_the_layer_folders_and_nothing_else_loose():
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(LAYERS) | {"nn"}
    loose = {p.name for p in SRC.glob("*.py")}
    assert loose == {
        "__init__.py",
        "__main__.py",
        "_moved.py",
        "optim.py",
        "data.py",
        "sklearn.py",
        "functions.py",
        "seed.py",
        "distributed.py",
        "numpy.py",
    }


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_flow_down_the_layers(path):
    me = module_name(path)
    upward = []
    for line, target in imports(path):
        if me.startswith("chainrule.train"):
            # The training library is built on the public API only (it would work unchanged on
            # another engine with the same API): chainrule, its public modules, its own layer.
            ok = (
                target == "chainrule"
                or target in PUBLIC_MODULES
                or target.split(".")[:2] == ["chainrule", "train"]
            )
        else:
            ok = layer(target) <= layer(me)
        if not ok:
            upward.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_the_import_walker_sees_upward_and_relative_imports():
    code = (
        "def f():\n    from ..readers import jit\n    from . import rules\n    import chainrule\n"
    )
    found = imports_of(code, "chainrule.engine.graph")
    assert found == [(2, "chainrule.readers"), (3, "chainrule.engine"), (4, "chainrule")]
    assert [layer(t) for _, t in found] == [2, 0, API]


def definitions_twice(tree: ast.AST) -> list[str]:
    """Functions and classes defined twice in one scope (the second silently replaces the
    first); property setters, overloads and ``register`` decorations are not redefinitions."""
    doubles = []
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for scope in scopes:
        seen: dict[str, int] = {}
        for node in getattr(scope, "body", []):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            decorators = [ast.unparse(d) for d in getattr(node, "decorator_list", [])]
            if any(
                d.endswith((".setter", ".deleter", ".register")) or "overload" in d
                for d in decorators
            ):
                continue
            if node.name in seen:
                doubles.append(f"{node.name} (lines {seen[node.name]} and {node.lineno})")
            seen[node.name] = node.lineno
    return doubles


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_function_is_defined_twice(path):
    assert definitions_twice(ast.parse(path.read_text())) == []


def test_the_redefinition_check_catches_one():
    code = "def f():\n    return 1\n\nx = f()\n\ndef f():\n    return 2\n"
    assert definitions_twice(ast.parse(code)) == ["f (lines 1 and 6)"]
    setter = (
        "class A:\n    @property\n    def v(self): ...\n    @v.setter\n    def v(self, x): ...\n"
    )
    assert definitions_twice(ast.parse(setter)) == []


# Every public name as it was before the layered layout (the contract; written out, not read back).
PUBLIC = {
    "chainrule": """detect_anomaly set_detect_anomaly AnomalyError Tensor tensor no_grad enable_grad
        is_grad_enabled TracerBoolError grad value_and_grad vjp jvp jacobian hessian hvp
        check_grads GradCheckReport GradientCheckError defvjp defvjp_argnum primitive Primitive
        explain Explanation jit JitFallbackWarning vmap check_backward BackwardCheck functions nn
        optim data fit Trainer History save load CheckpointError __version__""",
    "chainrule.nn": """functional init Module Sequential ModuleList ModuleDict Parameter
        functional_call IncompatibleKeys Linear Conv2d MaxPool2d AvgPool2d Flatten Dropout
        LayerNorm BatchNorm1d BatchNorm2d Identity MLP ReLU LeakyReLU ELU SELU GELU Sigmoid Tanh
        Softplus SiLU Softmax LogSoftmax MSELoss L1Loss HuberLoss SmoothL1Loss CrossEntropyLoss
        NLLLoss BCELoss BCEWithLogitsLoss""",
    "chainrule.nn.init": """calculate_gain constant_ default_generator fan_in_and_fan_out
        glorot_normal glorot_normal_ glorot_uniform glorot_uniform_ he_normal he_normal_
        he_uniform he_uniform_ kaiming_normal kaiming_normal_ kaiming_uniform kaiming_uniform_
        manual_seed normal normal_ ones ones_ uniform uniform_ xavier_normal xavier_normal_
        xavier_uniform xavier_uniform_ zeros zeros_""",
    "chainrule.nn.functional": """relu leaky_relu elu selu gelu sigmoid tanh softplus silu
        softmax log_softmax linear conv2d max_pool2d avg_pool2d dropout layer_norm batch_norm
        mse_loss l1_loss huber_loss smooth_l1_loss cross_entropy nll_loss
        binary_cross_entropy binary_cross_entropy_with_logits""",
    "chainrule.optim": "Optimizer SGD Adam AdamW RMSprop Adagrad clip_grad_norm_",
    "chainrule.data": "Dataset DataError load_dataset load_csv train_test_split",
    "chainrule.functions": "logsumexp softmax log_softmax sigmoid log_sigmoid softplus logit",
    "chainrule.sklearn": "MLPClassifier MLPRegressor",
    "chainrule.seed": "X T W1 W2 W3 W4 B1 B2 B3 B4 PARAMS forward hand_derived_gradients",
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_public_name_imports_as_before(module):
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC[module].split() if not hasattr(mod, n)]
    assert not missing
    if module != "chainrule.seed":
        assert set(PUBLIC[module].split()) <= set(mod.__all__)


def test_public_modules_are_the_same_objects_however_reached():
    import chainrule.nn.functional as F
    from chainrule.train.nn import functional as implementation

    assert chainrule.nn.functional is F
    assert F.relu is implementation.relu
    assert chainrule.nn.Linear is importlib.import_module("chainrule.train.nn.layers").Linear


@pytest.mark.parametrize(
    "old, new",
    [
        ("chainrule.rules", "chainrule.engine.rules"),
        ("chainrule.graph", "chainrule.engine.graph"),
        ("chainrule.primitives", "chainrule.engine.primitives"),
        ("chainrule.training", "chainrule.train.trainer"),
        ("chainrule.checkpoint", "chainrule.train.checkpoint"),
        ("chainrule.nn.layers", "chainrule.train.nn.layers"),
        ("chainrule.train_cli", "chainrule.cli.train"),
    ],
)
def test_an_old_module_path_gives_the_moved_module_and_names_its_new_path(old, new):
    code = (
        f"import warnings, importlib; warnings.simplefilter('error')\n"
        f"try:\n    importlib.import_module({old!r})\n"
        f"except DeprecationWarning as w:\n    print(w)\n"
        f"warnings.simplefilter('ignore')\n"
        f"print(importlib.import_module({old!r}) is importlib.import_module({new!r}))\n"
        f"import chainrule; print(callable(chainrule.tensor), callable(chainrule.jit))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == f"{old} is now {new}: import it from there"
    assert lines[1:] == ["True", "True True"]


@pytest.mark.parametrize(
    "old", ["chainrule.explain", "chainrule.jit", "chainrule.tensor", "chainrule.vmap"]
)
def test_an_old_module_path_that_is_now_a_function_names_the_new_path(old):
    with pytest.raises(ImportError, match=rf"{old} is now chainrule\.\w+\.\w+"):
        importlib.import_module(old)
    assert callable(getattr(chainrule, old.split(".")[1]))  # the public function is untouched


def test_public_modules_import_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in PUBLIC:
            importlib.import_module(name)
