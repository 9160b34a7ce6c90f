"""optbench.target_checks: the ``targets`` plan, and each check's verdict and diagnosis.

The checks are run through ``optbench.verdict.run_check`` exactly as ``optbench validate`` and the
suite run them. A target that violates a T property cannot be constructed (``Target`` refuses it with
a one-line error), so those checks are exercised on a correct target whose data is then corrupted.
"""

from __future__ import annotations

import copy

import pytest
import sympy
import torch

from optbench import Target
from optbench import target_checks as TC
from optbench.devices import cuda_skip_reason
from optbench.plan import Selection, checks
from optbench.verdict import ERROR, FAIL, NA, PASS, CheckFailure, NotApplicable, run_check


def _rosen(x):
    return (1 - x[..., 0]) ** 2 + 100 * (x[..., 1] - x[..., 0] ** 2) ** 2


@pytest.fixture(scope="module")
def rosen():
    return Target("rosen", "(1 - x)**2 + 100*(y - x**2)**2", variables=["x", "y"], start=[-1.2, 1.0], impl=_rosen)


def _verdicts(target, devices=("cpu",)):
    return [run_check(i) for i in TC.target_checks(Selection(targets=[target], devices=devices))]


def test_plan_has_one_item_per_check_target_dtype_device_in_a_fixed_order(rosen):
    sel = Selection(targets=[rosen], devices=("cpu", "cuda"))
    items = TC.target_checks(sel)
    assert [i.nodeid for i in items] == [i.nodeid for i in TC.target_checks(sel)]  # deterministic
    assert [i.nodeid for i in items] == [i.nodeid for i in checks(sel, ["targets"])]  # named in optbench.plan.PLANS
    t_items = [i for i in items if i.prop.startswith("T")]
    g_items = [i for i in items if i.prop.startswith("G")]
    assert [i.prop for i in t_items] == [p for p in TC.PROPERTIES if p.startswith("T")]
    assert {i.id for i in t_items} == {"rosen-exact"} and all(i.subject == "rosen" for i in items)
    # G1-G3 in float32 and float64, G4-G6 in float64, each on both devices
    assert len(g_items) == (3 * 2 + 3) * 2
    assert g_items[0].nodeid == "test_value_matches_sympy[rosen-float32-cpu]"
    assert set(TC.PROPERTIES) == {i.prop for i in items}
    for i in g_items:
        if i.device == "cuda":
            assert i.marks == ("cuda",) and i.na == cuda_skip_reason()
        else:
            assert i.marks == () and i.na is None
    (t10,) = [i for i in t_items if i.prop == "T10 separable"]
    assert t10.na and "polynomial" in t10.na  # a property the target lacks: N/A when planning


def test_user_rosenbrock_without_domain_gets_one_holding_its_start(rosen):
    # measured before: its derived default domain [-1, 3]^2 left the classic start outside, and T1
    # failed with a bare assert; that every check passes on it is run through pytest in test_user_targets
    assert rosen.domain == ((-4, 3), (-1, 3))
    TC.check_domain(rosen)


def test_a_non_separable_transcendental_target_is_not_applicable_for_enumeration():
    from optbench.catalogue import get_target

    with pytest.raises(NotApplicable, match="easom is not separable"):
        TC.check_separable(get_target("easom"))


def _failure(check, target, *args):
    with pytest.raises(CheckFailure) as info:
        check(target, *args)
    msg = info.value.one_line
    assert "\n" not in str(info.value)
    return info.value.prop, msg


@pytest.mark.parametrize(
    "corrupt, check_fn, needles",
    [
        (lambda t: setattr(t, "start", ((9, 9),)), TC.check_domain,
         ("T1 domain", "the start (9, 9) lies outside the domain [-4, 3] x [-1, 3]")),
        (lambda t: setattr(t, "basin", ((-4, -3), (-1, 0))), TC.check_domain, ("T1 domain", "holds none", "(1, 1)")),
        (lambda t: setattr(t, "minimizers", ((sympy.Rational(11, 10), 1),)), TC.check_stationary,
         ("T2 stationary", "x* = (11/10, 1)", "exact gradient is (", "expected exactly 0")),
        (lambda t: setattr(t, "f_star", sympy.Integer(1)), TC.check_value,
         ("T5 value", "x* = (1, 1)", "f = 0", "expected f* = 1", "allowed")),
        (lambda t: setattr(t, "f_star", sympy.Integer(1)), TC.check_sampled,
         ("T7 sampled", "expected >= f* = 1.0", "allowed", "not global")),
        (lambda t: setattr(t, "tags", frozenset({"psd"})), TC.check_hessian,
         ("T4 hessian", "tagged 'psd'", "eigenvalues (")),
    ],
    ids=["start-outside-domain", "basin-without-minimizer", "non-stationary-minimizer", "wrong-f-star-value",
         "wrong-f-star-sampled", "psd-tag-on-a-pd-minimum"],
)
def test_a_violated_target_property_names_itself_and_the_values(rosen, corrupt, check_fn, needles):
    bad = copy.copy(rosen)
    corrupt(bad)
    prop, msg = _failure(check_fn, bad)
    assert prop == needles[0] and msg.startswith(f"{prop}: rosen: ")
    for n in needles[1:]:
        assert n in msg, (n, msg)


def test_a_kernel_that_raises_is_a_finding_of_the_kernel_not_a_harness_error():
    def boom(x):
        raise RuntimeError("kernel exploded")

    t = Target("boom", "x**2 + y**2", impl=boom)
    verdicts = {v.prop: v for v in _verdicts(t)}
    for prop in ("G1 value", "G2 gradient", "G4 gradcheck", "G5 loop gradient"):
        v = verdicts[prop]
        assert v.outcome == FAIL and "raised RuntimeError: kernel exploded" in v.message, v
    assert "at x = (" in verdicts["G1 value"].message
    assert all(v.outcome != ERROR for v in verdicts.values())
    assert verdicts["T5 value"].outcome == PASS  # T checks judge the definition (the expression), not the kernel


def test_a_kernel_returning_the_wrong_shape_is_named():
    t = Target("shape", "x**2 + y**2", impl=lambda x: (x**2).sum(-1, keepdim=True))
    verdicts = {v.prop: v for v in _verdicts(t)}
    assert verdicts["G1 value"].outcome == FAIL
    assert "returned shape (1,) for an input of shape (2,)" in verdicts["G1 value"].message
    assert "expected shape (4,)" in verdicts["G4 gradcheck"].message


def test_points_beyond_a_dtype_range_are_not_judged_in_it():
    # x^2 reaches 1e40 on this domain: beyond float32 (3.4e38), well inside float64
    t = Target("wide", "x**2 + y**2", domain=[(-10**20, 10**20)], tags={"convex"})
    verdicts = {v.id + " " + v.prop: v for v in _verdicts(t)}
    v32 = verdicts["wide-float32-cpu G1 value"]
    assert v32.outcome == NA and "beyond float32's range" in v32.message
    assert verdicts["wide-float64-cpu G1 value"].outcome == PASS
    assert verdicts["wide-float64-cpu G3 hessian"].outcome == PASS


def test_every_property_is_documented_and_every_check_has_one():
    names = [p for _, p, _ in TC.T_CHECKS] + [p for _, p, _, _ in TC.G_CHECKS]
    assert names == list(TC.PROPERTIES) and all(TC.PROPERTIES[p] for p in names)
    assert len({t for t, _, _ in TC.T_CHECKS} | {t for t, _, _, _ in TC.G_CHECKS}) == len(names)
    for _, _, fn in TC.T_CHECKS:
        assert fn.__doc__
    for dtypes in (d for _, _, _, d in TC.G_CHECKS):
        assert set(dtypes) <= {torch.float32, torch.float64}


@pytest.mark.parametrize(
    "make, na",
    [
        # exp(1e6 x): central differences with h = 1e-6 give 1.18e6 for the derivative 1e6 at 0
        (lambda: Target("steep", "x**2 + exp(1000000*x)", start=[0], domain=[(-1, 1)], stationary_guesses=[(-1e-5,)]),
         {"T10 separable": "cannot evaluate"}),
        # 1e-320 * y**2: its float32 gradient underflows to exactly 0 (not a kernel bug)
        (lambda: Target("tiny", "x**2 + 1e-320*y**2", start=[(1, 1)], tags={"psd"}), {}),
        # a coefficient beyond float32: nothing can be judged in float32
        (lambda: Target("huge", "x**2 + 1e300*y**2", start=[(1, 1)], tags={"psd"}),
         {"G1 value@float32": "constant 1e+300 is beyond float32"}),
        # degree 5000, with the stationary guess the refusal of the exact derivation asks for
        (lambda: Target("deg5000", "x**5000 - x", start=[0.5], stationary_guesses=[(0.9983,)]), {}),
        (lambda: Target("tan_pole", "tan(x)**2", start=[1], domain=[(-2, 2)], stationary_guesses=[(0.1,)]),
         {"T10 separable": "cannot evaluate"}),
    ],
    ids=["exp-1e6x", "subnormal-coefficient", "coefficient-beyond-float32", "degree-5000", "tan-with-poles"],
)
def test_extreme_but_correct_targets_are_never_failed(make, na):
    """Precision: a correct target whose values or derivatives leave a dtype's range, or defeat finite
    differences, gets N/A with the reason on the affected checks, never FAIL or ERROR."""
    verdicts = _verdicts(make())
    bad = [(v.nodeid, v.outcome, v.message) for v in verdicts if v.outcome not in (PASS, NA)]
    assert not bad, bad
    for key, needle in na.items():
        prop, _, dt = key.partition("@")
        hits = [v for v in verdicts if v.prop == prop and (not dt or dt in v.id)]
        assert hits and all(v.outcome == NA and needle in v.message for v in hits), [(v.id, v.message) for v in hits]


def test_gradcheck_leaves_out_points_where_finite_differences_cannot_resolve_the_function():
    t = Target("steep", "x**2 + exp(1000000*x)", start=[0], domain=[(-1, 1)], stationary_guesses=[(-1e-5,)])
    assert TC.check_gradcheck(t) == {"points": 4, "gradcheck_points": 3, "gradgradcheck_points": 3}  # not x = 0
    with pytest.raises(NotApplicable, match="cannot resolve"):
        TC.check_gradcheck(Target("steeper", "x**2 + exp(1000000*x)", start=[0], domain=[(-1e-3, 1e-3)],
                                  stationary_guesses=[(-1e-5,)]))


def test_optbench_own_crash_inside_a_user_check_is_a_harness_error_not_the_kernel(monkeypatch, rosen):
    """A crash of optbench's code is never reported as the kernel's fault, even where it runs between
    the kernel's calls (the exact side of G1-G3, the loop hook of G5)."""
    from optbench import gradcheck

    def broken(*args, **kwargs):
        raise ZeroDivisionError("optbench bug")

    monkeypatch.setattr(gradcheck, "error_scale", broken)
    monkeypatch.setattr(TC, "error_scale", broken)
    verdicts = {v.prop: v for v in _verdicts(rosen) if v.id == "rosen-float64-cpu"}
    for prop in ("G1 value", "G2 gradient", "G5 loop gradient"):
        assert verdicts[prop].outcome == ERROR and "optbench internal error" in verdicts[prop].message, verdicts[prop]


def test_a_backward_that_gives_no_gradient_is_named():
    class NoGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return (x * x).sum(-1)

        @staticmethod
        def backward(ctx, g):
            return None

    verdicts = {v.prop: v for v in _verdicts(Target("nograd", "x**2 + y**2", impl=NoGrad))}
    for prop in ("G2 gradient", "G5 loop gradient", "G6 accumulation"):
        assert verdicts[prop].outcome == FAIL, verdicts[prop]
    assert "p.grad is None after backward" in verdicts["G5 loop gradient"].message
    assert "p.grad is None after backward" in verdicts["G6 accumulation"].message
