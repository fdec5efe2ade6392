"""The free-name analysis the language server's preview uses to decide which definitions a module-level edit
reaches (nanlint/free_names.py): a name is free when Python would look it up outside the definition."""
import ast
import textwrap

import pytest

from nanlint.free_names import free_names


def free(source: str) -> set[str]:
    return free_names(ast.parse(textwrap.dedent(source)).body) - {"print", "len", "range"}


@pytest.mark.parametrize("source, expected", [
    ("def f(x):\n    return x / EPS\n", {"EPS"}),
    ("def f(x, eps=EPS):\n    return x / eps\n", {"EPS"}),  # a default is read where the function is defined
    ("def f(x: Tensor) -> Out:\n    return x\n", {"Tensor", "Out"}),
    ("@register(NAME)\ndef f():\n    pass\n", {"register", "NAME"}),
    ("def f(x):\n    EPS = 1e-6\n    return x / EPS\n", set()),  # bound in the function: local
    ("def f(x):\n    y = x / EPS\n    EPS = 1\n    return y\n", set()),  # local for the whole scope
    ("def f():\n    global EPS\n    EPS = 0\n", {"EPS"}),
    ("def f():\n    import torch as th\n    return th.ones(1)\n", set()),
    ("def f():\n    import torch.nn\n    return torch.nn\n", set()),
    ("def f(xs):\n    return [x / SCALE for x in xs]\n", {"SCALE"}),
    ("def f():\n    return [x for x in ITEMS]\n", {"ITEMS"}),  # the first iterable: the enclosing scope
    ("def f(xs):\n    return {k: v for k, v in xs if v > LIMIT}\n", {"LIMIT"}),
    ("def f():\n    g = lambda y, s=SCALE: y * s * K\n    return g\n", {"SCALE", "K"}),
    ("def f(x):\n    def g():\n        return x + OUTER\n    return g\n", {"OUTER"}),  # x: the enclosing function's
    ("def f():\n    try:\n        pass\n    except ValueError as error:\n        return error\n", {"ValueError"}),
    ("def f(v):\n    match v:\n        case [a, *rest]:\n            return a, rest, C\n", {"C"}),
    ("def f(x):\n    with open(x) as handle:\n        return handle, MODE\n", {"open", "MODE"}),
    ("def f():\n    for i in ITEMS:\n        del i\n", {"ITEMS"}),
])
def test_the_free_names_of_a_function(source, expected):
    assert free(source) == expected


def test_a_class_body_binds_names_its_methods_cannot_see():
    source = """
    class Block(Base, metaclass=Meta):
        eps = EPS
        scale = eps * 2

        def forward(self, x):
            return x / eps  # the module's eps: the class body's is not visible here
    """
    assert free(source) == {"Base", "Meta", "EPS", "eps"}


def test_a_method_reads_the_names_an_enclosing_function_binds():
    source = """
    def make(eps):
        class Block:
            def forward(self, x):
                return x / eps
        return Block
    """
    assert free(source) == set()


def test_a_nested_scope_reading_a_module_name_makes_it_free():
    source = """
    def outer():
        def inner():
            return TABLE[0]
        return inner
    """
    assert free(source) == {"TABLE"}
