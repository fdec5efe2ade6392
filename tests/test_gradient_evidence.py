"""The module summary's gradient questions: evidence that training differentiates code, parameters every
caller fills with gradient-free values, parameters every caller passes as 0."""
from __future__ import annotations

import textwrap

from nanlint.analysis.summary import summarize

SOURCE = textwrap.dedent('''
    import torch
    import torch.nn as nn

    def helper(x):
        return x

    def orphan(x):
        return x

    def points_of(prob):
        pts = torch.stack(torch.where(prob > 0.5), -1).float()
        return pts

    class Head(nn.Module):
        def forward(self, prob, x):
            pts = points_of(prob)
            self.tool.run(pts, x)
            return helper(x)

    class Tool:
        def run(self, pts, x):
            return pts, x

        def idle(self, y):
            return y

    def focal_loss(logits, target):
        return logits

    def fov(fx, xi):
        return xi

    def caller(fx):
        xi = torch.zeros_like(fx)
        return fov(fx, xi)
''')


def test_evidence_by_place_name_and_call_chain() -> None:
    summary = summarize(SOURCE)
    assert summary.gradient_evidence("forward", "Head") is not None  # a method of an nn.Module
    assert summary.gradient_evidence("helper") is not None  # called from forward
    assert summary.gradient_evidence("run", "Tool") is not None  # called from forward through an attribute
    assert summary.gradient_evidence("focal_loss") is not None  # named like a loss
    assert summary.gradient_evidence("orphan") is None
    assert summary.gradient_evidence("idle", "Tool") is None
    assert summary.gradient_evidence(None) is None  # module level without backward()


def test_a_training_script_is_evidence_everywhere() -> None:
    summary = summarize(SOURCE + "\nloss = focal_loss(1, 2)\nloss.backward()\n")
    assert summary.gradient_evidence("orphan") is not None
    assert summary.gradient_evidence(None) is not None


def test_parameters_filled_with_indices_carry_no_gradient() -> None:
    summary = summarize(SOURCE)
    assert summary.gradient_free_parameter("run", "Tool", "pts")  # points_of returns torch.where indices
    assert not summary.gradient_free_parameter("run", "Tool", "x")  # forward's own input
    assert not summary.gradient_free_parameter("orphan", None, "x")  # no caller seen


def test_zero_at_every_call() -> None:
    import libcst as cst

    from nanlint.analysis.triggers import zero_at_every_call

    summary = summarize(SOURCE)
    module = cst.parse_module(SOURCE)
    fov = next(n for n in module.body if isinstance(n, cst.FunctionDef) and n.name.value == "fov")
    assert zero_at_every_call(summary, fov, "xi")
    assert not zero_at_every_call(summary, fov, "fx")


WRAPPED = textwrap.dedent('''
    import torch

    def radius_loss(X, Y):
        return torch.sqrt(X * X + Y * Y)

    def radius_fov(X, Y, fov=1.0):
        return radius_loss(X, Y) * fov

    def rays(model, h):
        Xs = model.proj(h)
        return radius_fov(Xs, Xs)

    def spread_loss(v):
        return torch.sqrt(v * v)

    def public(v):
        return spread_loss(v)

    def ping(x):
        return pong(x)

    def pong(x):
        return ping(x)
''')


def test_a_parameter_a_wrapper_passes_on_takes_what_the_wrapper_s_callers_pass() -> None:
    import libcst as cst

    from nanlint.analysis.triggers import INPUT, LEARNED, parameter_trigger

    summary = summarize(WRAPPED)
    functions = {n.name.value: n for n in cst.parse_module(WRAPPED).body if isinstance(n, cst.FunctionDef)}
    # radius_loss <- radius_fov(X) <- rays: a learned projection, two calls up
    assert parameter_trigger(summary, functions["radius_loss"], "X") is LEARNED
    assert parameter_trigger(summary, functions["radius_fov"], "X") is LEARNED
    # a wrapper nobody in the module calls: its parameter is an input, as before
    assert parameter_trigger(summary, functions["spread_loss"], "v") is INPUT
    assert parameter_trigger(summary, functions["ping"], "x") is INPUT  # a cycle ends as an input


def test_a_hazard_behind_a_wrapper_is_shown_by_what_reaches_the_wrapper() -> None:
    from helpers import lint

    found = {f.line: f for f in lint(WRAPPED) if f.code == "NAN201"}
    assert found[15].confidence == "medium" and "a zero or constant input row" in found[15].message  # spread_loss
    assert found[5].confidence == "low" and "a learned projection exactly 0" in found[5].message  # radius_loss
